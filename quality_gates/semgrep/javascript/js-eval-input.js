const vm = require("vm");

function bad(req, code) {
  // ruleid: js-eval-input
  eval(req.query.expr);
  // ruleid: js-eval-input
  const f = new Function("a", "b", code);
  // ruleid: js-eval-input
  Function(`return ${req.body.formula}`)();
  // ruleid: js-eval-input
  vm.runInThisContext(code);
  // ruleid: js-eval-input
  setTimeout("run(" + req.query.n + ")", 10);
  return f;
}

function good(data, handler) {
  // ok: js-eval-input
  eval("1 + 1");
  // ok: js-eval-input
  const g = new Function("a", "b", "return a + b");
  // ok: js-eval-input
  setTimeout(() => handler(data), 10);
  // ok: js-eval-input
  setTimeout(handler, 10);
  // ok: js-eval-input
  setInterval(function () { handler(data); }, 100);
  return JSON.parse(data) && g;
}
