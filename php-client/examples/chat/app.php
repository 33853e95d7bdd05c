<?php

/*
 * The chat example's setup, shared by index.php and send.php: the
 * cometbox Client, configured from the environment.
 *
 *   COMETBOX_NODE            the node's URL, as the browser and PHP reach it (default http://127.0.0.1:8080)
 *   COMETBOX_PUBLISH_SECRET  the node's -publish-secret (default: none)
 *   COMETBOX_TOKEN_SECRET    the node's -token-secret (default: none, and no tokens)
 *
 * The secrets have the names the node reads them from, so one environment
 * configures both.
 */

declare(strict_types=1);

require __DIR__ . '/../../autoload.php';

use Cometbox\Client;

/**
 * @return array{node: string, cometbox: Client, tokens: bool}
 */
return (static function (): array {
    $node = rtrim((string) (getenv('COMETBOX_NODE') ?: 'http://127.0.0.1:8080'), '/');
    $tokenSecret = (string) getenv('COMETBOX_TOKEN_SECRET');

    return [
        'node' => $node,
        'cometbox' => new Client([$node], (string) getenv('COMETBOX_PUBLISH_SECRET'), 2.0, null, $tokenSecret),
        'tokens' => $tokenSecret !== '',
    ];
})();
