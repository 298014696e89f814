#!/usr/bin/env node
// Makes solc-js (npm `solc`) usable as forge's compiler: no native solc is reachable here.
// forge calls `<solc> --version` and `<solc> --standard-json [--base-path P] [--include-path P]...`
// with the JSON input on stdin. Other flags are accepted and ignored.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const args = process.argv.slice(2);

if (args.includes('--version')) {
  // forge parses the semver after "Version: ".
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
  process.exit(0);
}

if (!args.includes('--standard-json')) {
  process.stderr.write('solc-shim: only --version and --standard-json are supported\n');
  process.exit(1);
}

// Import roots: --base-path first, then every --include-path, then the working directory.
const roots = [];
for (let i = 0; i < args.length; i++) {
  if ((args[i] === '--base-path' || args[i] === '--include-path') && args[i + 1]) roots.push(args[++i]);
}
roots.push(process.cwd());

function findImports(importPath) {
  const candidates = path.isAbsolute(importPath)
    ? [importPath]
    : roots.map((root) => path.resolve(root, importPath));
  for (const candidate of candidates) {
    try {
      return { contents: fs.readFileSync(candidate, 'utf8') };
    } catch (_) {
      // try the next root
    }
  }
  return { error: `File not found: ${importPath}` };
}

const input = fs.readFileSync(0, 'utf8');
const output = Buffer.from(solc.compile(input, { import: findImports }), 'utf8');

// process.stdout.write can be cut short when the process exits with a pipe still draining;
// a synchronous write loop delivers the whole (often multi-megabyte) JSON.
let offset = 0;
while (offset < output.length) {
  try {
    offset += fs.writeSync(1, output, offset, output.length - offset);
  } catch (err) {
    if (err.code !== 'EAGAIN') throw err;
  }
}
