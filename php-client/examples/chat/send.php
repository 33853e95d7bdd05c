<?php

/*
 * The form's handler: publishes {from, to, text} to the recipient, and to
 * the sender too so that their own page shows it, in one batch. Answers
 * JSON to fetch() (Accept: application/json) and redirects a plain form
 * post back to the page.
 *
 * A real application takes "from" from its session, not from the form.
 */

declare(strict_types=1);

use Cometbox\Exception\ApiException;
use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Exception\TransportException;

$app = require __DIR__ . '/app.php';

$wantsJson = strpos((string) ($_SERVER['HTTP_ACCEPT'] ?? ''), 'application/json') !== false;
$reply = static function (int $status, array $body) use ($wantsJson): void {
    http_response_code($status);
    if ($wantsJson) {
        header('Content-Type: application/json');
        echo json_encode($body), "\n";
    } else {
        header('Content-Type: text/plain; charset=utf-8');
        echo $body['error'] ?? 'ok', "\n";
    }
};

if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
    header('Allow: POST');
    $reply(405, ['error' => 'POST the form of index.php here']);

    return;
}
$from = (string) ($_POST['from'] ?? '');
$to = (string) ($_POST['to'] ?? '');
$text = trim((string) ($_POST['text'] ?? ''));
if ($text === '') {
    $reply(400, ['error' => 'write something first']);

    return;
}

$message = ['from' => $from, 'to' => $to, 'text' => $text, 'at' => time()];
try {
    $batch = $app['cometbox']->batch()->add($to, $message);
    if ($from !== $to) {
        $batch->add($from, $message);
    }
    $ids = $batch->send();
} catch (InvalidArgumentException $e) { // a bad client id or text: the user's to fix
    $reply(400, ['error' => $e->getMessage()]);

    return;
} catch (ApiException $e) { // the node refused: e.g. a wrong secret, or a message over its limit
    $reply(502, ['error' => $e->getMessage(), 'code' => $e->getErrorCode()]);

    return;
} catch (TransportException $e) { // no node confirmed it; a retry with $e->getIdempotencyKey() would not duplicate it
    $reply(503, ['error' => $e->getMessage()]);

    return;
}

if ($wantsJson) {
    $reply(200, ['ids' => $ids]);

    return;
}
header('Location: index.php?' . http_build_query(['as' => $from, 'to' => $to]), true, 303);
