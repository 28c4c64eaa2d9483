#!/usr/bin/env node
// The torchexplain command (explain, worker, info): the compiled dist/cli/main.js.
"use strict";
require("../dist/cli/main.js")
  .main(process.argv.slice(2))
  .then((code) => {
    process.exitCode = code;
  });
