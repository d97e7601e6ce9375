// Small progressive enhancements; every page works without this file.
document.addEventListener("keydown", (event) => {
  // "/" focuses the page's search box, as in most internal tools.
  if (event.key === "/" && !["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) {
    const search = document.querySelector("[data-search]");
    if (search) { event.preventDefault(); search.focus(); }
  }
});
// Behaviour that used to sit in inline handlers, which the Content-Security-Policy forbids:
// <form data-confirm="..."> asks before submitting, <select data-autosubmit> submits its form, [data-print] prints.
document.addEventListener("submit", (event) => {
  const message = event.target.dataset && event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
}, true);
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.requestSubmit();
});
document.addEventListener("click", (event) => {
  if (event.target.closest("[data-print]")) window.print();
});

// A name cut short (a select's choice, an ellipsised badge) shows in full on hover: the title attribute.
function titleCutShortText(root) {
  root.querySelectorAll("select").forEach((select) => {
    const choice = select.selectedOptions[0];
    if (!select.title || select.dataset.autoTitle) {
      select.title = choice ? choice.textContent.trim() : "";
      select.dataset.autoTitle = "1";
    }
  });
  root.querySelectorAll(".badge, .truncate").forEach((el) => {
    if (!el.title && el.scrollWidth > el.clientWidth) el.title = el.textContent.trim();
  });
}
document.addEventListener("DOMContentLoaded", () => titleCutShortText(document));
document.addEventListener("htmx:afterSettle", (event) => titleCutShortText(event.target.parentElement || document));
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-auto-title]")) titleCutShortText(event.target.parentElement);
});

// A form whose fields only some choices use: <div data-show-when="kind=a,b;scope=c"> shows while every named
// control has one of the listed values (a field with an error always shows); <select data-options-by="kind"
// data-options='{"a": ["x"]}'> offers only the options the other control's value allows.
function showWhen(form) {
  form.querySelectorAll("select[data-options-by]").forEach((select) => {
    const by = form.elements[select.dataset.optionsBy];
    const allowed = by ? JSON.parse(select.dataset.options)[by.value] : null;
    [...select.options].forEach((option) => {
      const ok = !allowed || allowed.includes(option.value);
      option.hidden = !ok;
      option.disabled = !ok;
    });
    if (allowed && allowed.length && !allowed.includes(select.value)) select.value = allowed[0];
  });
  form.querySelectorAll("[data-show-when]").forEach((el) => {
    const wanted = el.dataset.showWhen.split(";").every((condition) => {
      const [name, values] = condition.split("=");
      const control = form.elements[name];
      return !control || values.split(",").includes(control.value);
    });
    el.hidden = !wanted && !el.classList.contains("has-error");
  });
}
function showWhenIn(root) {
  root.querySelectorAll("form").forEach((form) => { if (form.querySelector("[data-show-when]")) showWhen(form); });
}
document.addEventListener("DOMContentLoaded", () => showWhenIn(document));
document.addEventListener("htmx:afterSettle", (event) => showWhenIn(event.target.parentElement || document));
document.addEventListener("change", (event) => {
  const form = event.target.form;
  if (form && form.querySelector("[data-show-when]")) showWhen(form);
});
