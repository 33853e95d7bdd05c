<?php

declare(strict_types=1);

namespace Cometbox\Transport;

use Cometbox\Exception\LogicException;

/**
 * Sends requests with PHP's own http:// stream wrapper (fopen and a
 * stream context), for hosts without curl. Needs allow_url_fopen. Each
 * request opens its own connection ("Connection: close").
 */
final class StreamTransport implements Transport
{
    /**
     * @throws LogicException when allow_url_fopen is off
     */
    public function __construct()
    {
        if (!self::isAvailable()) {
            throw new LogicException('StreamTransport needs allow_url_fopen=On in php.ini; use SocketTransport, or Transports::detect()');
        }
    }

    public static function isAvailable(): bool
    {
        return filter_var(ini_get('allow_url_fopen'), FILTER_VALIDATE_BOOLEAN);
    }

    public function send(Request $request): Response
    {
        $deadline = new Deadline($request);
        $headers = $request->headerLines();
        $headers[] = 'Connection: close';
        $context = stream_context_create([
            'http' => [
                'method' => $request->method(),
                'header' => implode("\r\n", $headers),
                'content' => $request->body(),
                'protocol_version' => 1.1, // chunked answers are decoded by the wrapper
                'timeout' => $request->timeout(), // connecting and each read; the loop below bounds the total
                'ignore_errors' => true, // a 4xx or 5xx answer is an answer
                'follow_location' => 0,
            ],
        ]);

        $error = '';
        set_error_handler(static function (int $severity, string $message) use (&$error): bool {
            $error = $message;

            return true;
        });
        try {
            $stream = fopen($request->url(), 'rb', false, $context);
        } finally {
            restore_error_handler();
        }
        if ($stream === false) {
            throw $deadline->failure(self::cleanError($error));
        }

        try {
            $body = '';
            while (!feof($stream)) {
                $deadline->limit($stream);
                $chunk = fread($stream, 65536);
                if ($chunk === false || ($chunk === '' && stream_get_meta_data($stream)['timed_out'])) {
                    throw $deadline->cutShort($stream, sprintf('after %d bytes of the answer', strlen($body)));
                }
                $body .= $chunk;
            }
            $meta = stream_get_meta_data($stream);
        } finally {
            fclose($stream);
        }

        $response = Response::fromHeaderLines(is_array($meta['wrapper_data'] ?? null) ? $meta['wrapper_data'] : [], $body);
        if ($response === null) {
            throw $deadline->failure('the answer has no HTTP status line');
        }

        return $response;
    }

    /** Keeps the part of a PHP warning that says what went wrong. */
    private static function cleanError(string $warning): string
    {
        if ($warning === '') {
            return 'could not open the connection';
        }
        $pos = stripos($warning, 'failed to open stream: ');
        if ($pos !== false) {
            return substr($warning, $pos + strlen('failed to open stream: '));
        }

        return $warning;
    }
}
