// Drives the dashboard in headless Chromium over the DevTools protocol, as an operator
// would: load the page (it must ask for the token before calling the API), type the
// token, wait for non-empty charts, fail on console errors, write a PNG.
// usage: node --experimental-websocket bench/dashboard-screenshot.mjs <dashboard url> <token> <out.png>
import { spawn } from "node:child_process";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const [url, token, out] = process.argv.slice(2);
if (!url || !token || !out) {
  console.error("usage: dashboard-screenshot.mjs <url> <token> <out.png>");
  process.exit(2);
}
const port = 9400 + Math.floor(Math.random() * 500);
const profile = mkdtempSync(join(tmpdir(), "dash-"));
const chrome = spawn("chromium", ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
  `--remote-debugging-port=${port}`, `--user-data-dir=${profile}`, "--window-size=1400,1900", "about:blank"],
  { stdio: "ignore" });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const deadline = Date.now() + 60000;
const fail = (msg) => { console.error(msg); chrome.kill(); process.exit(1); };

let target;
while (!target) {
  if (Date.now() > deadline) fail("chromium did not start");
  try {
    const list = await (await fetch(`http://127.0.0.1:${port}/json/list`)).json();
    target = list.find((t) => t.type === "page");
  } catch { await sleep(200); }
}
const ws = new WebSocket(target.webSocketDebuggerUrl);
await new Promise((r, j) => { ws.onopen = r; ws.onerror = j; });
let next = 1;
const pending = new Map();
const errors = [];
const events = [];
ws.onmessage = (m) => {
  const msg = JSON.parse(m.data);
  if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); return; }
  events.push(msg.method);
  if (msg.method === "Runtime.exceptionThrown") errors.push(msg.params.exceptionDetails.text + " " + JSON.stringify(msg.params.exceptionDetails.exception?.description || ""));
  if (msg.method === "Runtime.consoleAPICalled" && msg.params.type === "error") errors.push("console.error " + JSON.stringify(msg.params.args));
  if (msg.method === "Log.entryAdded" && msg.params.entry.level === "error") errors.push("log " + msg.params.entry.text + " " + (msg.params.entry.url || ""));
};
const call = (method, params = {}) => new Promise((r) => { const id = next++; pending.set(id, r); ws.send(JSON.stringify({ id, method, params })); });
const evaluate = async (expr) => (await call("Runtime.evaluate", { expression: expr, returnByValue: true })).result?.result?.value;

await call("Runtime.enable"); await call("Log.enable"); await call("Page.enable");
await call("Page.navigate", { url });
while (!(await evaluate("document.readyState === 'complete'"))) { if (Date.now() > deadline) fail("page did not load"); await sleep(100); }
await sleep(300);
if (!(await evaluate("getComputedStyle(document.getElementById('login')).display === 'flex'"))) fail("the page did not ask for the token");
await evaluate(`document.getElementById('token').value = ${JSON.stringify(token)}; document.getElementById('loginform').requestSubmit();`);
let series = 0;
while (series === 0) {
  if (Date.now() > deadline) fail("charts stayed empty: " + await evaluate("document.getElementById('msg').textContent"));
  await sleep(250);
  series = await evaluate("document.querySelectorAll('#traffic path.series, #status rect.series').length");
}
await sleep(500);
const shot = await call("Page.captureScreenshot", { format: "png", captureBeyondViewport: true });
writeFileSync(out, Buffer.from(shot.result.data, "base64"));
const status = await evaluate("document.getElementById('msg').textContent");
console.log(JSON.stringify({ screenshot: out, series, status, errors }));
ws.close(); chrome.kill();
process.exit(errors.length ? 1 : 0);
