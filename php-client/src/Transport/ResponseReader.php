<?php

declare(strict_types=1);

namespace Cometbox\Transport;

use Cometbox\Exception\TransportException;

/**
 * Reads one HTTP/1.1 answer from a stream: the status line and headers
 * (skipping any interim 1xx answer), then the body as the headers say:
 * chunked (RFC 9112 section 7.1: chunk extensions ignored, trailers read
 * and dropped), exactly Content-Length bytes, or everything up to the end
 * of the connection.
 *
 * @internal used by SocketTransport; public for its tests
 */
final class ResponseReader
{
    /** Longest status or header line accepted, in bytes. */
    private const MAX_LINE = 65536;

    /** Most header lines accepted in one answer. */
    private const MAX_HEADERS = 200;

    /** @var resource */
    private $stream;

    private Deadline $deadline;

    /**
     * @param resource $stream
     */
    public function __construct($stream, Deadline $deadline)
    {
        $this->stream = $stream;
        $this->deadline = $deadline;
    }

    /**
     * @param string $method the request's method: a HEAD answer has no body
     *
     * @throws TransportException when the answer is cut short, late or not HTTP
     */
    public function read(string $method): Response
    {
        do {
            $statusLine = $this->line('the status line');
            if (preg_match('~^HTTP/1\.[01] (\d{3})(?: |$)~', $statusLine, $m) !== 1) {
                throw $this->deadline->failure(sprintf('not an HTTP/1.x answer: %s', substr($statusLine, 0, 80)));
            }
            $status = (int) $m[1];
            $lines = [$statusLine];
            $this->headers($lines);
        } while ($status >= 100 && $status < 200);

        $response = Response::fromHeaderLines($lines, '');
        if ($response === null) { // cannot happen: $lines starts with a status line
            throw $this->deadline->failure('no status line');
        }
        if ($method === 'HEAD' || $status === 204 || $status === 304) {
            return $response;
        }

        $encoding = strtolower((string) $response->header('Transfer-Encoding'));
        $length = $response->header('Content-Length');
        if ($encoding !== '' && $encoding !== 'identity') {
            if (!preg_match('/(?:^|,)\s*chunked\s*$/', $encoding)) {
                throw $this->deadline->failure(sprintf('unsupported Transfer-Encoding "%s"', $encoding));
            }
            $body = $this->chunked();
        } elseif ($length !== null) {
            if (preg_match('/^\d{1,15}$/', $length) !== 1) {
                throw $this->deadline->failure(sprintf('bad Content-Length "%s"', $length));
            }
            $body = $this->exactly((int) $length, 'of the body');
        } else {
            $body = $this->untilClosed();
        }

        return new Response($status, $response->headers(), $body);
    }

    /**
     * Reads header lines up to the blank line that ends them.
     *
     * @param string[] $lines
     */
    private function headers(array &$lines): void
    {
        for ($n = 0; ; $n++) {
            $line = $this->line('the headers');
            if ($line === '') {
                return;
            }
            if ($n >= self::MAX_HEADERS) {
                throw $this->deadline->failure('more than ' . self::MAX_HEADERS . ' header lines');
            }
            $lines[] = $line;
        }
    }

    private function chunked(): string
    {
        $body = '';
        while (true) {
            $sizeLine = $this->line('a chunk size');
            $size = trim(explode(';', $sizeLine, 2)[0]);
            if (preg_match('/^[0-9a-fA-F]{1,15}$/', $size) !== 1) {
                throw $this->deadline->failure(sprintf('bad chunk size line "%s"', substr($sizeLine, 0, 40)));
            }
            $bytes = (int) hexdec($size);
            if ($bytes === 0) {
                $trailers = [];
                $this->headers($trailers); // read and dropped

                return $body;
            }
            $body .= $this->exactly($bytes, 'of a chunk');
            if ($this->line('the end of a chunk') !== '') {
                throw $this->deadline->failure('a chunk is longer than its size');
            }
        }
    }

    /** Reads one line and returns it without its CRLF (or bare LF). */
    private function line(string $what): string
    {
        $line = '';
        while (substr($line, -1) !== "\n") {
            if (strlen($line) > self::MAX_LINE) {
                throw $this->deadline->failure(sprintf('a line of %s over %d bytes', $what, self::MAX_LINE));
            }
            $this->deadline->limit($this->stream);
            $part = fgets($this->stream, 8192);
            if ($part === false || $part === '') {
                throw $this->deadline->cutShort($this->stream, 'while reading ' . $what);
            }
            $line .= $part;
        }

        return rtrim($line, "\r\n");
    }

    private function exactly(int $length, string $what): string
    {
        $data = '';
        while (strlen($data) < $length) {
            $this->deadline->limit($this->stream);
            $part = fread($this->stream, min(65536, $length - strlen($data)));
            if ($part === false || $part === '') {
                if (feof($this->stream) || stream_get_meta_data($this->stream)['timed_out']) {
                    throw $this->deadline->cutShort($this->stream, sprintf('after %d of %d bytes %s', strlen($data), $length, $what));
                }
                continue;
            }
            $data .= $part;
        }

        return $data;
    }

    private function untilClosed(): string
    {
        $data = '';
        while (!feof($this->stream)) {
            $this->deadline->limit($this->stream);
            $part = fread($this->stream, 65536);
            if ($part === false || ($part === '' && stream_get_meta_data($this->stream)['timed_out'])) {
                throw $this->deadline->cutShort($this->stream, sprintf('after %d bytes of the body', strlen($data)));
            }
            $data .= $part;
        }

        return $data;
    }
}
