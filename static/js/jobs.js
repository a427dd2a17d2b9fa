// Live job progress: poll the jobs API for every unfinished job row on the page.
(function () {
  "use strict";
  const FINISHED = new Set(["succeeded", "failed"]);
  const POLL_MS = 1500;

  function pendingRows() {
    return Array.from(document.querySelectorAll("[data-job-id]")).filter(
      (row) => !FINISHED.has(row.dataset.jobState)
    );
  }

  async function refresh(row) {
    const response = await fetch(`/api/jobs/${row.dataset.jobId}/`, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    if (!response.ok) return;
    const job = await response.json();
    row.dataset.jobState = job.state;
    row.querySelector(".job-state").textContent = job.state;
    row.querySelector(".job-progress").value = job.progress;
    row.querySelector(".job-message").textContent = job.error || job.message;
    if (job.finished_at) row.querySelector(".job-finished").textContent = job.finished_at;
  }

  async function tick() {
    const rows = pendingRows();
    await Promise.all(rows.map(refresh));
    if (pendingRows().length) setTimeout(tick, POLL_MS);
    else if (rows.length) window.setTimeout(() => window.location.reload(), 500);
  }

  if (pendingRows().length) setTimeout(tick, POLL_MS);
})();
