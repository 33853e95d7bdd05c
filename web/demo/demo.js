// The cometbox demo page: one Cometbox client, its state, the messages it
// receives, and a form that publishes through the node's demo-only route.
// Message data is only ever put in the page as text (textContent).
(function () {
  "use strict";

  var $ = function (id) { return document.getElementById(id); };
  var params = new URLSearchParams(location.search);
  var cb = null;
  var count = 0;

  $("client").value = params.get("client") || "alice";
  $("to").value = $("client").value;
  $("transport").value = params.get("transport") || "auto";
  $("shared").checked = params.get("shared") === "1";

  function time() {
    return new Date().toLocaleTimeString();
  }

  function show(data) {
    return typeof data === "string" ? data : JSON.stringify(data, null, 2);
  }

  function event(kind, text) {
    var li = document.createElement("li");
    li.className = kind;
    var t = document.createElement("span");
    t.className = "time";
    t.textContent = time() + " ";
    var k = document.createElement("span");
    k.className = "kind";
    k.textContent = kind;
    li.append(t, k, " " + text);
    var list = $("events");
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 100) {
      list.removeChild(list.lastChild);
    }
  }

  function status() {
    var s = $("state");
    var state = cb ? cb.state : "disconnected";
    s.textContent = state;
    s.className = "pill " + state;
    $("via").textContent = cb && cb.transport ? (cb.transport === "shared" ? "another tab's connection" : cb.transport) : "–";
    $("cursor").textContent = cb && cb.cursor ? cb.cursor : "–";
    $("role").textContent = cb && cb.role ? cb.role : (cb ? "own connection" : "–");
  }

  function received(msg) {
    count++;
    $("count").textContent = String(count);
    $("empty").hidden = true;
    var li = document.createElement("li");
    var id = document.createElement("span");
    id.className = "id";
    id.textContent = "#" + msg.id;
    var t = document.createElement("span");
    t.className = "time";
    t.textContent = time();
    var d = document.createElement("span");
    d.className = "data";
    d.textContent = show(msg.data);
    li.append(id, t, d);
    var list = $("messages");
    list.insertBefore(li, list.firstChild);
    status();
  }

  // A node with a token secret hands the demo a token; one without has no
  // /demo/token route (404) and needs none.
  function token() {
    return fetch("/demo/token?client=" + encodeURIComponent($("client").value)).then(function (r) {
      if (r.status === 404) {
        return "";
      }
      if (!r.ok) {
        throw new Error("token: HTTP " + r.status);
      }
      return r.json().then(function (j) { return j.token; });
    });
  }

  function connect() {
    if (cb) {
      cb.stop();
    }
    var client = $("client").value.trim();
    cb = new Cometbox({
      url: location.origin,
      client: client,
      token: token,
      transport: $("transport").value,
      shared: $("shared").checked,
      onMessage: received,
      onStateChange: function (state) {
        status();
        event("state", state + (cb && cb.transport ? " (" + (cb.transport === "shared" ? "via another tab" : cb.transport) + ")" : ""));
      },
      onError: function (err) {
        event("error", err.code + ": " + err.message + (err.retryIn !== undefined ? " (retry in " + err.retryIn + " ms)" : ""));
      },
      onGap: function (g) {
        event("gap", "messages " + g.first + " to " + g.last + " can no longer be delivered");
      },
      onReset: function () {
        event("reset", "the queue started over; messages may have been lost");
      }
    });
    cb.on("role", function (role) {
      event("tab", role === "leader" ? "this tab holds the connection" : "another tab holds the connection");
      status();
    });
    cb.start();
    status();
    $("curl").textContent =
      "curl -H 'Content-Type: application/xml' \\\n" +
      "  --data '<message to=\"" + client + "\">Hello from PHP</message>' \\\n" +
      "  " + location.origin + "/publish";
  }

  $("subscribe").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var q = new URLSearchParams();
    q.set("client", $("client").value.trim());
    if ($("transport").value !== "auto") {
      q.set("transport", $("transport").value);
    }
    if ($("shared").checked) {
      q.set("shared", "1");
    }
    history.replaceState(null, "", "?" + q.toString());
    $("to").value = $("client").value;
    connect();
  });

  $("publish").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var data = $("data").value;
    var result = $("publish-result");
    if ($("as-json").checked) {
      try {
        data = JSON.parse(data);
      } catch (e) {
        result.textContent = "not JSON: " + e.message;
        return;
      }
    }
    result.textContent = "publishing…";
    fetch("/demo/publish", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ messages: [{ to: $("to").value.trim(), data: data }] })
    }).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) {
          throw new Error(j.error ? j.error.code + ": " + j.error.message : "HTTP " + r.status);
        }
        var q = j.queued[0];
        result.textContent = "queued for " + q.to + " as #" + q.id;
      });
    }).catch(function (e) {
      result.textContent = "failed: " + e.message;
    });
  });

  // Who is online: the node's demo-only /demo/presence, asked every two
  // seconds (a back end would ask GET /api/presence, or take webhooks).
  function presence() {
    fetch("/demo/presence").then(function (r) {
      return r.json().then(function (j) {
        var list = $("online");
        list.textContent = "";
        if (!r.ok) {
          var li = document.createElement("li");
          li.textContent = j.error ? j.error.message : "HTTP " + r.status;
          list.append(li);
          return;
        }
        var online = j.online.slice().sort(function (a, b) { return a.client < b.client ? -1 : 1; });
        $("online-count").textContent = String(online.length);
        online.forEach(function (p) {
          var li = document.createElement("li");
          li.className = p.client === $("client").value.trim() ? "self" : "";
          var t = document.createElement("span");
          t.className = "time";
          t.textContent = "since " + new Date(p.since).toLocaleTimeString();
          li.append(p.client, t);
          list.append(li);
        });
      });
    }).catch(function () { /* the next round tries again */ });
  }

  setInterval(status, 1000);
  setInterval(presence, 2000);
  connect();
  presence();
})();
