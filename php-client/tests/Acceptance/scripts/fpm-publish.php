<?php

/*
 * A page as a PHP application serves it under php-fpm: load the client,
 * publish one message, answer. Run by PhpFpmTest and by bench/fpm.php
 * through FastCGI; the query string says where and what:
 *
 *     node=http://127.0.0.1:PORT  secret=...  to=CLIENT  data=TEXT
 *     transport=NAME (optional: Transports::detect() without it)
 *
 * It answers JSON: the id, the worker's pid, the transport, how long the
 * publish took (constructing the Client and send(), in nanoseconds), the
 * connections this request opened (as curl or the extension counts them)
 * and the extension's counters when it is loaded; or the exception.
 */

declare(strict_types=1);

$begin = hrtime(true);
require dirname(__DIR__, 3) . '/autoload.php';

header('Content-Type: application/json');
try {
    $start = hrtime(true);
    $client = new Cometbox\Client(
        [(string) $_GET['node']],
        (string) ($_GET['secret'] ?? ''),
        (float) ($_GET['timeout'] ?? 2.0),
        isset($_GET['transport']) ? Cometbox\Transport\Transports::named((string) $_GET['transport']) : null
    );
    $native = function_exists('Cometbox\Native\stats') ? Cometbox\Native\stats()['connections_opened'] : 0;
    $id = $client->send((string) $_GET['to'], (string) ($_GET['data'] ?? 'hello'));
    $end = hrtime(true);
    $transport = $client->transport();
    if ($transport instanceof Cometbox\Transport\CurlTransport) {
        $opened = $transport->connectionsOpened();
    } elseif ($transport instanceof Cometbox\Transport\NativeTransport) {
        $opened = Cometbox\Native\stats()['connections_opened'] - $native;
    } else {
        $opened = null;
    }
    echo json_encode([
        'id' => $id,
        'pid' => getmypid(),
        'transport' => get_class($client->transport()),
        'publish_ns' => $end - $start,
        'page_ns' => $end - $begin,
        'opened' => $opened,
        'opcache' => function_exists('opcache_get_status') && is_array($status = opcache_get_status(false)) && $status['opcache_enabled'],
        'native' => function_exists('Cometbox\Native\stats') ? Cometbox\Native\stats() : null,
    ]);
} catch (Throwable $e) {
    http_response_code(500);
    echo json_encode(['error' => get_class($e) . ': ' . $e->getMessage(), 'pid' => getmypid()]);
}
