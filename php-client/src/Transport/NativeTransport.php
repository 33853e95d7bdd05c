<?php

declare(strict_types=1);

namespace Cometbox\Transport;

use Cometbox\Exception\LogicException;
use Cometbox\Exception\TransportException;

/**
 * Sends requests through the cometbox extension (php-client/ext/), which
 * keeps one connection per node open for as long as the PHP process lives:
 * under php-fpm or mod_php, the requests a worker serves one after another
 * reuse one connection instead of opening one each. Transports::detect()
 * prefers it whenever the extension is loaded.
 *
 * The extension checks a kept connection before reusing it, and resends a
 * request once on a new connection only when the node closed the kept one
 * before any answer and the request carries an Idempotency-Key (every
 * publish does), so a publish is never enqueued twice.
 */
final class NativeTransport implements Transport
{
    private ?bool $persistent;

    /**
     * @param bool|null $persistent keep connections open across PHP requests;
     *                              null: the cometbox.persistent ini setting (on by default)
     *
     * @throws LogicException when the cometbox extension is not loaded
     */
    public function __construct(?bool $persistent = null)
    {
        if (!self::isAvailable()) {
            throw new LogicException('NativeTransport needs the cometbox extension (php-client/ext/, extension=cometbox.so); use CurlTransport, or Transports::detect()');
        }
        $this->persistent = $persistent;
    }

    public static function isAvailable(): bool
    {
        return function_exists('Cometbox\Native\request');
    }

    public function send(Request $request): Response
    {
        try {
            [$status, $headers, $body] = \Cometbox\Native\request(
                $request->method(),
                $request->url(),
                $request->headers(),
                $request->body(),
                $request->timeout(),
                $request->connectTimeout(),
                $this->persistent
            );
        } catch (\Cometbox\Native\NetworkException $e) {
            throw new TransportException($e->getMessage(), 0, $e);
        }

        return new Response($status, $headers, $body);
    }

    /**
     * What the extension has done in this process: requests,
     * connections_opened, connections_reused, stale_found (kept connections
     * found closed before reuse), stale_retried (requests resent once on a
     * new connection) and open (connections kept now).
     *
     * @return array<string, int>
     */
    public static function stats(): array
    {
        if (!self::isAvailable()) {
            throw new LogicException('NativeTransport::stats() needs the cometbox extension');
        }

        return \Cometbox\Native\stats();
    }
}
