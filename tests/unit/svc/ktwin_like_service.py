#!/usr/bin/env python3
"""A twin service that makes exactly the HTTP calls of KTWIN's service SDKs
(KTWIN.md section 5), for tests/unit/svc/test_caller.c.

It listens on 127.0.0.1 (port 0, printed on the first stdout line) and, like
a Go service built on ktwin-smart-cities-services/golang/pkg:
  - receives binary-mode CloudEvents on POST / (Knative delivery);
  - loads the twin graph ONCE, lazily: GET {KTWIN_GRAPH_URL}/{iface};
  - GetLatestTwinEvent: GET {KTWIN_EVENT_STORE}/api/v1/twin-events/{iface}/{inst}/latest
    (404 -> no state);
  - UpdateTwinEvent: POST ktwin.store.<iface> to {KTWIN_BROKER} (expects 202);
  - the older Python SDK's update_twin_event: POST directly to
    {KTWIN_EVENT_STORE}/api/v1/twin-events (expects 202);
  - PublishCommand: ktwin.command.<rel iface>.<lower(cmd)> with source = the
    related instance, for each relationship of the instance in the graph;
  - PublishToRealTwin: ktwin.virtual.<iface> to the broker;
  - answers 200 with an empty body (server.StartServer), 500 on any error.
Data posted: store {"count": N, "lastValue": <event data>} where N is the
latest state's count + 1; direct store {"direct": true}; command
{"aqiLevel": "MODERATE"}; virtual {"ack": N}.
"""
import datetime
import http.server
import json
import os
import sys
import urllib.error
import urllib.request
import uuid

BROKER = os.environ["KTWIN_BROKER"]
STORE = os.environ["KTWIN_EVENT_STORE"].rstrip("/")
GRAPH = os.environ["KTWIN_GRAPH_URL"].rstrip("/")
graph = None


def post_cloud_event(url, ce_type, source, data):
    body = json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("ce-id", str(uuid.uuid4()))
    req.add_header("ce-specversion", "1.0")
    req.add_header("ce-time", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    req.add_header("ce-source", source)
    req.add_header("ce-type", ce_type)
    req.add_header("ce-subject", "")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        if r.status != 202:
            raise RuntimeError("POST %s: status %d, want 202" % (url, r.status))


def get_latest(iface, inst):
    try:
        with urllib.request.urlopen("%s/api/v1/twin-events/%s/%s/latest" % (STORE, iface, inst), timeout=10) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        if e.code == 404:
            return None
        raise


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def answer(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        global graph
        try:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            ce_type = self.headers["ce-type"]
            source = self.headers["ce-source"]
            if self.headers.get("ce-specversion") != "1.0" or not self.headers.get("ce-id"):
                raise RuntimeError("not a binary-mode CloudEvent")
            parts = ce_type.split(".")
            kind, iface = parts[1], parts[2]
            if graph is None:
                with urllib.request.urlopen("%s/%s" % (GRAPH, iface), timeout=10) as r:
                    graph = json.loads(r.read())
            if kind == "real":
                latest = get_latest(iface, source)
                count = (latest or {}).get("count", 0) + 1
                post_cloud_event(BROKER, "ktwin.store." + iface, source,
                                 {"count": count, "lastValue": json.loads(body)})
                post_cloud_event(STORE + "/api/v1/twin-events", "ktwin.store." + iface, source, {"direct": True})
                for inst in graph.get("twinInstances", []):
                    if inst["name"] != source:
                        continue
                    for rel in inst.get("relationships", []):
                        post_cloud_event(BROKER, "ktwin.command.%s.%s" % (rel["interface"], "UpdateAirQualityIndex".lower()),
                                         rel["instance"], {"aqiLevel": "MODERATE"})
                post_cloud_event(BROKER, "ktwin.virtual." + iface, source, {"ack": count})
            self.answer(200)
        except Exception as e:  # the Go server answers 500 on any handler error
            sys.stderr.write("ktwin_like_service: %r\n" % (e,))
            self.answer(500)


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
