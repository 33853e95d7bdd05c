<?php

declare(strict_types=1);

namespace Cometbox\Transport;

use Cometbox\Exception\LogicException;
use Cometbox\Exception\TransportException;

/**
 * Speaks HTTP/1.1 itself over fsockopen(), for hosts with neither curl nor
 * allow_url_fopen. Each request opens its own connection
 * ("Connection: close"); chunked and Content-Length answers are both read
 * (see ResponseReader). https:// needs the openssl extension.
 */
final class SocketTransport implements Transport
{
    /**
     * @throws LogicException when fsockopen() is disabled
     */
    public function __construct()
    {
        if (!self::isAvailable()) {
            throw new LogicException('SocketTransport needs fsockopen(), which disable_functions turns off here');
        }
    }

    public static function isAvailable(): bool
    {
        return function_exists('fsockopen');
    }

    public function send(Request $request): Response
    {
        $deadline = new Deadline($request);
        $url = parse_url($request->url());
        $scheme = strtolower($url['scheme'] ?? '');
        if (!isset($url['host']) || ($scheme !== 'http' && $scheme !== 'https')) {
            throw $deadline->failure('not an absolute http(s) URL');
        }
        $https = $scheme === 'https';
        $port = $url['port'] ?? ($https ? 443 : 80);
        $host = $url['host']; // IPv6 literals keep their brackets, as fsockopen wants them

        $errno = 0;
        $errstr = '';
        $socket = @fsockopen(($https ? 'tls://' : 'tcp://') . $host, $port, $errno, $errstr, $request->connectTimeout());
        if ($socket === false) {
            throw $deadline->failure(sprintf('cannot connect to %s:%d: %s', $host, $port, $errstr !== '' ? $errstr : 'error ' . $errno));
        }

        try {
            $writeError = $this->write($socket, $this->head($request, $url, $port, $https) . $request->body(), $deadline);
            try {
                return (new ResponseReader($socket, $deadline))->read($request->method());
            } catch (TransportException $e) {
                throw $writeError ?? $e;
            }
        } finally {
            fclose($socket);
        }
    }

    /**
     * The request line and headers.
     *
     * @param array<string, mixed> $url parse_url()'s answer
     */
    private function head(Request $request, array $url, int $port, bool $https): string
    {
        $target = ($url['path'] ?? '') !== '' ? $url['path'] : '/';
        if (isset($url['query'])) {
            $target .= '?' . $url['query'];
        }
        $host = $url['host'];
        if ($port !== ($https ? 443 : 80)) {
            $host .= ':' . $port;
        }

        $lines = [$request->method() . ' ' . $target . ' HTTP/1.1', 'Host: ' . $host];
        foreach ($request->headerLines() as $line) {
            $lines[] = $line;
        }
        $lines[] = 'Content-Length: ' . strlen($request->body());
        $lines[] = 'Connection: close';

        return implode("\r\n", $lines) . "\r\n\r\n";
    }

    /**
     * Writes $data, however many fwrite() calls it takes, and stops early
     * when the node answers before it has read everything (a 413 for a body
     * over its limit, say), as curl does: that answer is what counts.
     *
     * @param resource $socket
     *
     * @return TransportException|null why the writing stopped short, if it did
     */
    private function write($socket, string $data, Deadline $deadline): ?TransportException
    {
        $total = strlen($data);
        for ($written = 0; $written < $total; $written += $n) {
            $read = [$socket];
            $none = [];
            if ($written > 0 && stream_select($read, $none, $none, 0) > 0) {
                return null; // an early answer (or the end of the connection): read it
            }
            $deadline->limit($socket);
            $n = @fwrite($socket, substr($data, $written, 65536));
            if ($n === false || $n === 0) {
                return $deadline->cutShort($socket, sprintf('after sending %d of %d bytes of the request', $written, $total));
            }
        }

        return null;
    }
}
