// The PHP client's chat example (php-client/examples/chat) in Chromium,
// the way its README's five-minute walkthrough runs it: a node with
// secrets and -cors-origins for the example's origin, `php -S` serving the
// example, and two users' pages. A message typed into bob's form goes
// PHP form -> send.php -> Cometbox\Client -> node -> alice's page.
"use strict";

const { describe, it, before, after } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { spawn } = require("node:child_process");
const env = require("./support/env.js");

function skipUnlessPHP() {
  const base = env.skipOrFail(["redis-server", "chromium", "node-binary"]);
  if (base) return base;
  if (env.which("php")) return false;
  if (env.STRICT) throw new Error("COMETBOX_TEST_STRICT=1 and php not installed");
  console.log("SKIP: php not installed (set COMETBOX_TEST_STRICT=1 to fail instead)");
  return "php not installed";
}

describe("the PHP chat example in a browser", { skip: skipUnlessPHP() }, () => {
  let node, app, browser, php;

  before(async () => {
    const redis = await env.startRedis();
    const port = await env.freePort();
    app = `http://127.0.0.1:${port}`;
    node = await env.startNode({
      redis,
      name: "chat",
      args: ["-publish-secret", "pub-secret", "-token-secret", "tok-secret", "-cors-origins", app],
    });
    php = spawn("php", ["-S", `127.0.0.1:${port}`, "-t", path.join(env.ROOT, "php-client/examples/chat")], {
      env: { ...process.env, COMETBOX_NODE: node.url, COMETBOX_PUBLISH_SECRET: "pub-secret", COMETBOX_TOKEN_SECRET: "tok-secret" },
      stdio: ["ignore", "ignore", "ignore"],
    });
    await env.until(async () => {
      try {
        return (await fetch(app + "/?as=alice")).ok;
      } catch (_) {
        return false;
      }
    }, 10000, "php -S serving the example");
    browser = await env.launchChromium();
  });

  after(async () => {
    if (php && php.exitCode === null) {
      const exited = new Promise((res) => php.once("exit", res));
      php.kill("SIGTERM");
      await exited;
    }
    await env.stopAll();
  });

  it("delivers what bob's form sends to alice's page, and to bob's own", async () => {
    const alice = await browser.newPage();
    const bob = await browser.newPage();
    await alice.goto(app + "/?as=alice&to=bob");
    await bob.goto(app + "/?as=bob&to=alice");
    for (const page of [alice, bob]) {
      await page.waitForFunction(() => document.getElementById("state").textContent === "connected", null, { timeout: 15000 });
    }

    const text = "hello from bob, <b>not bold</b> & ünïcode ✓";
    await bob.fill("#send input[name=text]", text);
    await bob.click("#send button");

    for (const [who, page] of [["alice", alice], ["bob", bob]]) {
      await page.waitForFunction(
        (want) => [...document.querySelectorAll("#messages li")].some((li) => li.textContent.includes(want)),
        text,
        { timeout: 10000 },
      );
      const items = await page.$$eval("#messages li", (lis) => lis.map((li) => li.textContent));
      assert.equal(items.filter((t) => t.includes(text)).length, 1, `${who}'s page shows the message once: ${JSON.stringify(items)}`);
      assert.ok(items.some((t) => t.startsWith("bob → alice")), `${who}'s page names sender and recipient: ${JSON.stringify(items)}`);
      assert.equal(await page.$$eval("#messages b", (b) => b.length), 0, "markup in a message stays text");
    }
  });
});
