/**
 * The fixed parts of the PowerShell script `windows` emits: helpers and the
 * closing check. Policy values never appear here; emit.ts passes them to
 * these helpers as psString literals.
 */

/** The rule group egress owns on Windows: the script replaces it and touches no other rule. */
export const GROUP = 'egress';

export const PRELUDE = String.raw`#Requires -RunAsAdministrator
#Requires -Modules NetSecurity
Set-StrictMode -Version 2.0
$ErrorActionPreference = 'Stop'
$Group = '${GROUP}'

# An account name -> its SID, looked up on this host. Unknown accounts stop the
# script before anything is changed.
function Resolve-EgressSid([string]$Name) {
    try {
        return (New-Object System.Security.Principal.NTAccount($Name)).Translate([System.Security.Principal.SecurityIdentifier]).Value
    } catch {
        throw ("egress: account '{0}' does not exist on this host; nothing was changed" -f $Name)
    }
}

# A hostname -> its addresses of one family, through the system resolver (so
# the hosts file pins work). On failure, the addresses it had when the policy
# was compiled (last known good); a name that never resolved gives none, and
# rules with no address left are not created (fail closed).
function Resolve-EgressHost([string]$Name, [string]$Family, [string[]]$Known) {
    $want = if ($Family -eq 'ipv4') { 'InterNetwork' } else { 'InterNetworkV6' }
    $found = @()
    try {
        $found = @([System.Net.Dns]::GetHostAddresses($Name) | Where-Object { $_.AddressFamily -eq $want } | ForEach-Object { $_.IPAddressToString -replace '%.*$', '' })
    } catch {
        $found = @()
    }
    if ($found.Count -eq 0 -and $Known.Count -gt 0) {
        Write-Warning ("egress: cannot resolve {0} ({1}); using the addresses it had when the policy was compiled" -f $Name, $Family)
        $found = $Known
    } elseif ($found.Count -eq 0) {
        Write-Warning ("egress: {0} ({1}) has never resolved; rules that need it match nothing" -f $Name, $Family)
    }
    return ,([string[]]$found)
}

# Every rule: outbound, all profiles, in the egress group.
function New-EgressRule([hashtable]$Rule) {
    New-NetFirewallRule @Rule -Group $Group -Direction Outbound -Profile Any -Enabled True | Out-Null
}

# A rule whose destinations come (partly) from hostnames: created only if some address is left.
function New-EgressRuleTo([hashtable]$Rule, [object[]]$Addresses) {
    $list = @($Addresses | Where-Object { $_ })
    if ($list.Count -eq 0) {
        Write-Warning ("egress: rule {0} has no destination address left; not created (fail closed)" -f $Rule.Name)
        return
    }
    $Rule.RemoteAddress = $list
    New-EgressRule $Rule
}`;

/** After the rules: other groups' outbound allow rules also let traffic out, and we say so. */
export const FOREIGN_ALLOW_CHECK = String.raw`# Windows Firewall lets a connection out when any allow rule matches it (and no
# block rule does). Allow rules outside the egress group - Windows' own "Core
# Networking" rules, rules installed with applications - therefore widen this
# policy. egress does not touch them; it lists how many there are.
$foreign = @(Get-NetFirewallRule -Direction Outbound -Action Allow -Enabled True -ErrorAction SilentlyContinue | Where-Object { $_.Group -ne $Group })
if ($foreign.Count -gt 0) {
    Write-Warning ("egress: {0} enabled outbound allow rules outside the '{1}' group also let traffic out; review them with: Get-NetFirewallRule -Direction Outbound -Action Allow -Enabled True | Where-Object Group -ne '{1}'" -f $foreign.Count, $Group)
}`;
