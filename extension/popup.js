// Popup: the last capture and the last upload (time, success or what the user must fix).

import { formatTime, loadSettings } from "./lib.js";

/** Fill the popup from the stored status. */
async function render() {
  const settings = await loadSettings();
  const { status = {} } = await chrome.storage.local.get("status");
  document.getElementById("target").textContent = settings.url || "not set up: open Options";
  const capture = status.capture;
  if (capture) {
    document.getElementById("capture").textContent =
      `${formatTime(capture.at)} (${capture.size} bytes)` +
      (capture.alreadyUploaded ? ", the frame already uploaded: not sent again" : "");
  }
  const upload = status.upload;
  const uploadCell = document.getElementById("upload");
  const problem = document.getElementById("problem");
  if (upload) {
    uploadCell.textContent = `${formatTime(upload.at)}: ${upload.ok ? "stored in Orderhook" : "failed"}`;
    uploadCell.className = upload.ok ? "ok" : "bad";
    problem.textContent = upload.ok ? "" : upload.message;
  }
}

document.getElementById("options").addEventListener("click", () => chrome.runtime.openOptionsPage());
chrome.storage.onChanged.addListener(render);
render();
