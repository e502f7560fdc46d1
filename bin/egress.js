#!/usr/bin/env node
// The bundled program (scripts/bundle.mjs, built by `npm run build`).
import '../dist/bundle/egress.js';
