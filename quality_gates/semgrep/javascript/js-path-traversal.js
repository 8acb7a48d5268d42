const fs = require("fs");
const path = require("path");

function bad(req, res) {
  // ruleid: js-path-traversal
  fs.readFile(path.join(__dirname, "uploads", req.query.file), (err, data) => res.send(data));
  const target = "/srv/files/" + req.params.name;
  // ruleid: js-path-traversal
  fs.writeFileSync(target, req.body.text);
  // ruleid: js-path-traversal
  res.sendFile(path.resolve("public", req.query.page));
  // ruleid: js-path-traversal
  fs.promises.readFile(`/data/${req.body.report}`);
}

function good(req, res) {
  // ok: js-path-traversal
  fs.readFile(path.join(__dirname, "uploads", path.basename(req.query.file)), () => {});
  // ok: js-path-traversal
  fs.readFileSync(path.join(__dirname, "config.json"));
  // ok: js-path-traversal
  res.sendFile(path.join(__dirname, "index.html"));
}
