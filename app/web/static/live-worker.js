// The SharedWorker every blotter tab of this origin shares: ONE live stream per browser, whatever the
// number of tabs (a stream per tab exhausted the browser's six connections per host, docs/frontend.md).
// Tabs talk to it through their port: it sends them LiveSource's reports; they send {kind: "bye"} when
// they go away and {kind: "signed-out"} after Sign out (every tab then reloads to the sign-in form).
"use strict";

importScripts("live-source.js");

const ports = new Set();
const live = new LiveSource((message) => {
  for (const port of ports) port.postMessage(message);
  if (message.kind === "signed-out") ports.clear();
});

self.onconnect = (event) => {
  const port = event.ports[0];
  ports.add(port);
  port.onmessage = ({ data }) => {
    if (data.kind === "bye") {
      ports.delete(port);
      if (!ports.size) live.stop();
    } else if (data.kind === "signed-out") {
      live.signedOut();
    }
  };
  port.start();
  port.postMessage(live.state);
  live.start();
};
