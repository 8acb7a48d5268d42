import DOMPurify from "dompurify";

export function bad(el, comment, params) {
  // ruleid: js-inner-html-input
  el.innerHTML = comment.body;
  // ruleid: js-inner-html-input
  el.innerHTML = `<b>${params.get("name")}</b>`;
  // ruleid: js-inner-html-input
  el.insertAdjacentHTML("beforeend", "<li>" + comment.title + "</li>");
  // ruleid: js-inner-html-input
  document.write(location.hash);
}

export function Comment({ html }) {
  // ruleid: js-inner-html-input
  return <div dangerouslySetInnerHTML={{ __html: html }} />;
}

export function good(el, comment) {
  // ok: js-inner-html-input
  el.innerHTML = "";
  // ok: js-inner-html-input
  el.textContent = comment.body;
  // ok: js-inner-html-input
  el.innerHTML = DOMPurify.sanitize(comment.body);
}

export function Safe({ html }) {
  // ok: js-inner-html-input
  return <div dangerouslySetInnerHTML={{ __html: DOMPurify.sanitize(html) }} />;
}
