// Draws the dashboard's charts from the JSON the page carries (no inline script: the CSP allows 'self' only).
(function () {
  var data = JSON.parse(document.getElementById("chart-data").textContent);
  var opts = {animation: false, plugins: {legend: {display: false}}, scales: {y: {beginAtZero: true}}};
  new Chart(document.getElementById("chart-stage"), {type: "bar",
    data: {labels: data.stage.labels, datasets: [{label: data.label, data: data.stage.cases, backgroundColor: "#3b6ea5"}]},
    options: opts});
  new Chart(document.getElementById("chart-bucket"), {type: "bar",
    data: {labels: data.bucket.labels, datasets: [{label: data.label, data: data.bucket.cases, backgroundColor: "#a65f1c"}]},
    options: opts});
})();
