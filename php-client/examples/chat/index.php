<?php

/*
 * The chat page: who you are comes from ?as= (alice by default). PHP mints
 * a token for you, the page loads cometbox.js from the node and receives
 * your messages; the form posts to send.php, which publishes them.
 */

declare(strict_types=1);

use Cometbox\ClientId;

$app = require __DIR__ . '/app.php';

$me = (string) ($_GET['as'] ?? 'alice');
$to = (string) ($_GET['to'] ?? ($me === 'alice' ? 'bob' : 'alice'));
if (!ClientId::isValid($me) || !ClientId::isValid($to)) {
    http_response_code(400);
    header('Content-Type: text/plain; charset=utf-8');
    echo "?as= and ?to= take client ids: 1 to 128 characters of A-Z a-z 0-9 _ . : @ -\n";

    return;
}
$token = $app['tokens'] ? $app['cometbox']->token($me, 3600) : '';

/** HTML-escapes a value. */
$h = static function (string $value): string {
    return htmlspecialchars($value, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
};
/** A value as a JavaScript literal, safe inside <script>. */
$js = static function (string $value): string {
    return (string) json_encode($value, JSON_HEX_TAG | JSON_HEX_AMP | JSON_HEX_APOS | JSON_HEX_QUOT | JSON_UNESCAPED_SLASHES);
};
header('Content-Type: text/html; charset=utf-8');
?>
<!doctype html>
<html lang="en">
<head>
    <meta charset="utf-8">
    <title>cometbox chat: <?= $h($me) ?></title>
    <style>
        body { font: 16px/1.4 system-ui, sans-serif; max-width: 40em; margin: 2em auto; padding: 0 1em; }
        #messages { list-style: none; padding: 0; min-height: 10em; border: 1px solid #ccc; border-radius: 4px; }
        #messages li { padding: .3em .6em; border-bottom: 1px solid #eee; }
        #messages .from { font-weight: bold; margin-right: .5em; }
        #state { font-size: .8em; color: #666; }
        form { display: flex; gap: .5em; margin-top: 1em; }
        form input[name=text] { flex: 1; }
    </style>
</head>
<body>
<h1>You are <?= $h($me) ?> <span id="state">connecting</span></h1>
<p>Open <a href="?as=<?= $h(rawurlencode($to)) ?>&amp;to=<?= $h(rawurlencode($me)) ?>" target="_blank"><?= $h($to) ?>'s page</a> in another tab and talk.</p>

<ul id="messages"></ul>

<form id="send" method="post" action="send.php">
    <input type="hidden" name="from" value="<?= $h($me) ?>">
    <label>to <input name="to" value="<?= $h($to) ?>" size="10" required></label>
    <input name="text" placeholder="Say something" autocomplete="off" required autofocus>
    <button>Send</button>
</form>

<script src="<?= $h($app['node']) ?>/cometbox.js"></script>
<script>
    const list = document.getElementById('messages');
    function show(data) {
        const item = document.createElement('li');
        const from = document.createElement('span');
        from.className = 'from';
        from.textContent = typeof data === 'object' && data !== null ? data.from + ' → ' + data.to : '';
        item.append(from, typeof data === 'object' && data !== null ? data.text : String(data));
        list.append(item);
    }

    const cb = new Cometbox({
        url: <?= $js($app['node']) ?>,
        client: <?= $js($me) ?>,
        token: <?= $js($token) ?>,
        onMessage(msg) { show(msg.data); },
        onStateChange(state) { document.getElementById('state').textContent = state; },
    });
    cb.start();

    // Without JavaScript the form posts and send.php redirects back here;
    // with it, the message is sent in the background.
    const form = document.getElementById('send');
    form.addEventListener('submit', async (event) => {
        event.preventDefault();
        const answer = await fetch(form.action, { method: 'POST', body: new FormData(form), headers: { Accept: 'application/json' } });
        if (answer.ok) {
            form.elements.text.value = '';
        } else {
            alert((await answer.json()).error);
        }
    });
</script>
</body>
</html>
