// Playground streaming: the form POST prepares the runs, then each card streams its answer over SSE.
// Without this file (or without EventSource) the form posts normally and the server renders the results.
(() => {
  const form = document.querySelector("form[data-playground]");
  if (!form || !window.EventSource || !window.fetch) return;
  const results = document.getElementById("playground-results");

  const stream = (card) => {
    const output = card.querySelector(".run-output");
    const show = (data) => {
      card.dataset.runStatus = data.status;
      output.textContent = data.output || output.textContent;
      card.querySelector(".run-tokens").textContent = `${data.input_tokens} in · ${data.output_tokens} out`;
      card.querySelector(".run-latency").textContent = `${data.latency_ms} ms`;
      card.querySelector(".run-cost").textContent = data.cost === null ? "unpriced" : `$${data.cost}`;
    };
    const source = new EventSource(card.dataset.stream);
    source.addEventListener("delta", (event) => { output.textContent += JSON.parse(event.data).text; });
    source.addEventListener("done", (event) => { show(JSON.parse(event.data)); source.close(); });
    source.addEventListener("error", (event) => {
      source.close();
      const error = card.querySelector(".run-error");
      card.dataset.runStatus = "error";
      error.hidden = false;
      error.textContent = event.data ? JSON.parse(event.data).error : "The connection was lost.";
    });
  };

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const response = await fetch(form.action || window.location.href, {
        method: "POST", body: new FormData(form), headers: {"X-Playground-Stream": "1"}, credentials: "same-origin",
      });
      results.innerHTML = await response.text();
      results.querySelectorAll("[data-stream]").forEach(stream);
    } finally {
      button.disabled = false;
    }
  });
})();
