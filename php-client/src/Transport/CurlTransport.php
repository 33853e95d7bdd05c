<?php

declare(strict_types=1);

namespace Cometbox\Transport;

use Cometbox\Exception\LogicException;
use Cometbox\Exception\TransportException;

/**
 * Sends requests with the curl extension, through one handle that lives as
 * long as the transport (and so as long as the Client that owns it): the
 * connection to a node is kept alive and reused from one call to the next.
 */
final class CurlTransport implements Transport
{
    /** @var resource|\CurlHandle|null a resource on PHP 7, an object on PHP 8 */
    private $handle;

    private int $connectionsOpened = 0;

    /**
     * @throws LogicException when the curl extension is not loaded
     */
    public function __construct()
    {
        if (!self::isAvailable()) {
            throw new LogicException('CurlTransport needs the curl extension; use StreamTransport or SocketTransport, or Transports::detect()');
        }
    }

    public static function isAvailable(): bool
    {
        return function_exists('curl_init');
    }

    public function __destruct()
    {
        if (is_resource($this->handle)) {
            curl_close($this->handle); // PHP 7; on PHP 8 the handle is an object, freed with the transport
        }
    }

    public function send(Request $request): Response
    {
        $handle = $this->handle();
        curl_reset($handle); // options only: the open connection stays

        $headerLines = [];
        $headers = $request->headerLines();
        $headers[] = 'Expect:'; // no "100-continue" round trip before the body
        $options = [
            CURLOPT_URL => $request->url(),
            CURLOPT_CUSTOMREQUEST => $request->method(),
            CURLOPT_HTTPHEADER => $headers,
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_HEADERFUNCTION => static function ($handle, string $line) use (&$headerLines): int {
                $headerLines[] = $line;

                return strlen($line);
            },
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_HTTP_VERSION => CURL_HTTP_VERSION_1_1,
            CURLOPT_NOSIGNAL => true, // needed for timeouts under a second
            CURLOPT_TIMEOUT_MS => self::milliseconds($request->timeout()),
            CURLOPT_CONNECTTIMEOUT_MS => self::milliseconds($request->connectTimeout()),
        ];
        if (defined('CURLOPT_PROTOCOLS')) {
            $options[CURLOPT_PROTOCOLS] = CURLPROTO_HTTP | CURLPROTO_HTTPS;
        }
        if ($request->body() !== '' || $request->method() === 'POST') {
            $options[CURLOPT_POSTFIELDS] = $request->body();
        }
        curl_setopt_array($handle, $options);

        $body = curl_exec($handle);
        $this->connectionsOpened += (int) curl_getinfo($handle, CURLINFO_NUM_CONNECTS);
        if (!is_string($body)) {
            throw new TransportException(sprintf(
                '%s %s: %s (curl error %d)',
                $request->method(),
                $request->url(),
                curl_error($handle),
                curl_errno($handle)
            ));
        }
        $response = Response::fromHeaderLines($headerLines, $body);
        if ($response === null) {
            throw new TransportException(sprintf('%s %s: the answer has no HTTP status line', $request->method(), $request->url()));
        }

        return $response;
    }

    /**
     * How many connections this transport has opened so far; it stays put
     * while calls reuse a kept-alive connection.
     */
    public function connectionsOpened(): int
    {
        return $this->connectionsOpened;
    }

    /** @return resource|\CurlHandle */
    private function handle()
    {
        if ($this->handle === null) {
            $handle = curl_init();
            if ($handle === false) {
                throw new TransportException('curl_init() failed');
            }
            $this->handle = $handle;
        }

        return $this->handle;
    }

    private static function milliseconds(float $seconds): int
    {
        return max(1, (int) ceil($seconds * 1000));
    }
}
