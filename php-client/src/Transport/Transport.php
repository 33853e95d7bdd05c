<?php

declare(strict_types=1);

namespace Cometbox\Transport;

use Cometbox\Exception\TransportException;

/**
 * Sends one HTTP request. The client brings three: CurlTransport,
 * StreamTransport and SocketTransport (Transports::detect() picks the
 * first one this PHP can run); implement this interface to plug in
 * another HTTP client, a PSR-18 one for instance (see README.md).
 *
 * A transport does not retry, follow redirects or interpret the status:
 * a 4xx or 5xx answer is an answer, returned like a 200. The Client
 * decides what to do with it.
 */
interface Transport
{
    /**
     * @throws TransportException when no complete answer arrived: the
     *                            connection failed or was cut, or the
     *                            request's timeout passed
     */
    public function send(Request $request): Response;
}
