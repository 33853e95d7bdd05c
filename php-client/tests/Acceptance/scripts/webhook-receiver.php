<?php

/*
 * A back end's webhook endpoint, as the README shows it, served by `php -S`
 * for ServerApiTest: it verifies each request with Webhook::verify and
 * appends a JSON line per request to $WEBHOOK_LOG: the events it read, or
 * why it refused the request.
 */

declare(strict_types=1);

require dirname(__DIR__, 3) . '/autoload.php';

use Cometbox\Exception\WebhookException;
use Cometbox\Webhook;

$log = (string) getenv('WEBHOOK_LOG');
try {
    $events = Webhook::verify(getallheaders(), (string) file_get_contents('php://input'), (string) getenv('WEBHOOK_SECRET'));
} catch (WebhookException $e) {
    file_put_contents($log, json_encode(['refused' => $e->getMessage()]) . "\n", FILE_APPEND | LOCK_EX);
    http_response_code(400);

    return;
}
$lines = [];
foreach ($events as $event) {
    $lines[] = ['class' => get_class($event), 'id' => $event->id(), 'client' => method_exists($event, 'client') ? $event->client() : null];
}
file_put_contents($log, json_encode(['events' => $lines]) . "\n", FILE_APPEND | LOCK_EX);
http_response_code(204);
