// Validate FHIR R4 resources with the npm `fhir` package (FHIR.js), independently of our Python code.
// stdin: a JSON array of resources. stdout: a JSON array of {valid, errors} in the same order.
// Errors are the validator's messages of severity "error"; `errorOnUnexpected` makes unknown
// elements errors too, so a misspelt or misplaced element cannot pass.
"use strict";
const { Fhir } = require("fhir");

const fhir = new Fhir();
let input = "";
process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => { input += chunk; });
process.stdin.on("end", () => {
  const resources = JSON.parse(input);
  const results = resources.map((resource) => {
    const outcome = fhir.validate(resource, { errorOnUnexpected: true });
    const errors = (outcome.messages || [])
      .filter((m) => m.severity === "error")
      .map((m) => `${m.location}: ${m.message}`);
    return { valid: outcome.valid, errors };
  });
  process.stdout.write(JSON.stringify(results));
});
