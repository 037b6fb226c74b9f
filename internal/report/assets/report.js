// Filters and sorts the report's tables; without it they read as they are.
(function () {
  "use strict";
  function cellValue(row, i, numeric) {
    var c = row.cells[i];
    var t = c ? c.textContent.trim() : "";
    if (!numeric) return t.toLowerCase();
    var n = parseFloat(t.replace(/[^0-9.\-]/g, ""));
    return isNaN(n) ? -Infinity : n;
  }
  document.querySelectorAll("table.data").forEach(function (table) {
    var body = table.tBodies[0];
    if (!body) return;
    var box = document.createElement("div");
    box.className = "tools";
    var input = document.createElement("input");
    input.type = "search";
    input.placeholder = "Filter these " + body.rows.length + " rows";
    input.setAttribute("aria-label", "Filter table");
    box.appendChild(input);
    table.parentNode.insertBefore(box, table);
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase();
      Array.prototype.forEach.call(body.rows, function (r) {
        r.hidden = q !== "" && r.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.classList.add("sortable");
      th.addEventListener("click", function () {
        var numeric = th.classList.contains("num");
        var dir = th.classList.contains("asc") ? -1 : 1;
        Array.prototype.forEach.call(th.parentNode.cells, function (o) { o.classList.remove("asc", "desc"); });
        th.classList.add(dir === 1 ? "asc" : "desc");
        var rows = Array.prototype.slice.call(body.rows);
        var keyed = rows.map(function (r) { return [cellValue(r, i, numeric), r]; });
        keyed.sort(function (a, b) { return a[0] < b[0] ? -dir : a[0] > b[0] ? dir : 0; });
        var frag = document.createDocumentFragment();
        keyed.forEach(function (k) { frag.appendChild(k[1]); });
        body.appendChild(frag);
      });
    });
  });
})();
