<?php

/**
 * The extension's PHP surface; cometbox_arginfo.h is generated from this
 * file by PHP's build/gen_stub.php (make gen-stub, see README.md).
 *
 * @generate-class-entries
 */

namespace Cometbox\Native {
    /**
     * @var string
     * @cvalue PHP_COMETBOX_VERSION
     */
    const VERSION = UNKNOWN;

    /**
     * Sends one HTTP/1.1 request on this process's kept-alive connection
     * to the URL's node (opening it when there is none or it died) and
     * returns the answer, whatever its status: [status, headers, body],
     * headers with lower-case names, repeated ones joined by ", ".
     *
     * @return array{0: int, 1: array<string, string>, 2: string}
     * @throws NetworkException when no complete answer arrived
     */
    function request(
        string $method,
        string $url,
        array $headers = [],
        string $body = "",
        ?float $timeout = null,
        ?float $connectTimeout = null,
        ?bool $persistent = null
    ): array {}

    /**
     * What this process has done: requests, connections_opened,
     * connections_reused, stale_found, stale_retried, open.
     *
     * @return array<string, int>
     */
    function stats(): array {}

    /** Closes this process's kept-alive connections; returns how many. */
    function close_all(): int {}

    /** No complete answer: getCode() tells the kind (the constants below). */
    class NetworkException extends \RuntimeException
    {
        /**
         * @var int
         * @cvalue CBX_E_CONNECT
         */
        public const CONNECT = UNKNOWN;
        /**
         * @var int
         * @cvalue CBX_E_TIMEOUT
         */
        public const TIMEOUT = UNKNOWN;
        /**
         * @var int
         * @cvalue CBX_E_CLOSED
         */
        public const CLOSED = UNKNOWN;
        /**
         * @var int
         * @cvalue CBX_E_PROTOCOL
         */
        public const PROTOCOL = UNKNOWN;
        /**
         * @var int
         * @cvalue CBX_E_TOO_LARGE
         */
        public const TOO_LARGE = UNKNOWN;
        /**
         * @var int
         * @cvalue CBX_E_TLS
         */
        public const TLS = UNKNOWN;
    }
}
