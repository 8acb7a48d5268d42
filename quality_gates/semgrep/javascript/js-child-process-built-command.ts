import { exec } from "child_process";
import * as child from "node:child_process";

export function run(input: string): void {
  // ruleid: js-child-process-built-command
  exec("convert " + input);
  // ruleid: js-child-process-built-command
  child.execSync(`zip ${input}`);
  // ok: js-child-process-built-command
  child.execFileSync("zip", [input]);
}
