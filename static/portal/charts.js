// Draws the charts portal/charts.py puts on a page: each [data-chart] container holds its figure as JSON in a
// <script type="application/json">. The same code draws them after the page loads and after every htmx swap, so
// a chart swapped in looks exactly like one from a full load; each chart follows its container's size.
(() => {
  if (!window.Plotly || !window.ResizeObserver) return;
  const widths = new WeakMap();
  const resized = new ResizeObserver((entries) => {
    for (const { target } of entries) {
      if (!target.isConnected) { resized.unobserve(target); continue; }
      const width = target.clientWidth;
      if (!target._fullLayout || widths.get(target) === width) continue;
      widths.set(target, width);
      requestAnimationFrame(() => window.Plotly.Plots.resize(target));  // next frame: no ResizeObserver loop
    }
  });
  const draw = (container) => {
    const spec = JSON.parse(container.querySelector(':scope > script[type="application/json"]').textContent);
    for (const child of [...container.children]) { if (child.tagName !== "SCRIPT") child.remove(); }
    widths.set(container, container.clientWidth);
    window.Plotly.newPlot(container, spec.data, spec.layout, spec.config);
    container.dataset.chartDrawn = "true";
    resized.observe(container);
  };
  const drawAll = (again = false) => {
    document.querySelectorAll("[data-chart]").forEach((container) => {
      if (again || !container.dataset.chartDrawn) draw(container);
    });
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => drawAll());
  else drawAll();
  // After a swap has settled: htmx has put back the final attributes, the grid has its final columns.
  document.addEventListener("htmx:afterSettle", () => drawAll());
  // Back/forward restores a snapshot of the page's HTML: the charts in it are pictures; draw them for real.
  document.addEventListener("htmx:historyRestore", () => drawAll(true));
})();
