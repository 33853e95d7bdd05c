<?php

/*
 * Run by PublishTest under `php -n`: publishes the text corpus and one JSON
 * message with the plain autoload.php, whatever transport and XML writer a
 * PHP without extensions gets, and prints what it used and the ids.
 *
 * Usage: php -n bare-publish.php NODE_URL PUBLISH_SECRET CLIENT
 */

declare(strict_types=1);

require dirname(__DIR__, 3) . '/autoload.php';
require dirname(__DIR__) . '/Support/Corpus.php';

[, $node, $secret, $to] = $argv;
$client = new Cometbox\Client([$node], $secret, 5.0);
$batch = $client->batch();
foreach (Cometbox\Tests\Acceptance\Support\Corpus::texts() as $text) {
    $batch->add($to, $text);
}
$batch->add($to, ['json' => ['nested' => "\u{1F600}"]]);

echo json_encode([
    'transport' => get_class($client->transport()),
    'xmlwriter' => class_exists('XMLWriter'),
    'ids' => $batch->send(),
]);
