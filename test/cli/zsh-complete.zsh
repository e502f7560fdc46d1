# zsh -f zsh-complete.zsh DIR 'egress compile x --target '
# Types the line into an interactive zsh (a pty) whose fpath starts with DIR
# (holding _egress), presses Tab, and prints the words completion offered
# there, one a line, sorted: compadd is wrapped to print what it adds. Waits
# for each prompt before typing: zle drops typeahead given too early.
zmodload zsh/zpty
zpty z zsh -f -i
zpty -w z "PS1='PR''OMPT>'; fpath=($1 \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z 'compadd() { builtin compadd "$@"; local -a a; builtin compadd -O a "$@"; print -rl -- ${a/#/"<C>"} }'
zpty -w z "print -r -- 'REA''DY'"
zpty -r z line '*READY*PROMPT>'
zpty -w -n z "$2"$'\t'
zpty -w z $'\C-u'"print -r -- 'DO''NE'"
zpty -r z out '*DONE*PROMPT>'
print -r -- "$out" | tr -d '\r' | grep -o '<C>[^<[:cntrl:]]*' | sed 's/<C>//' | sort -u
zpty -d z
