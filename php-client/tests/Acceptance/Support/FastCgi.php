<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance\Support;

/**
 * A FastCGI client, just enough to send GET requests to php-fpm the way a
 * web server does: one connection per request, as nginx's fastcgi_pass
 * opens by default (FastCGI specification 1.0, sections 3 and 5).
 */
final class FastCgi
{
    private const VERSION = 1;
    private const BEGIN_REQUEST = 1;
    private const END_REQUEST = 3;
    private const PARAMS = 4;
    private const STDIN = 5;
    private const STDOUT = 6;
    private const STDERR = 7;
    private const RESPONDER = 1;

    private string $address;

    /**
     * @param string $address where php-fpm listens: "unix:///path/fpm.sock" or "tcp://127.0.0.1:9000"
     */
    public function __construct(string $address)
    {
        $this->address = $address;
    }

    /**
     * Runs $script with $query as its QUERY_STRING.
     *
     * @return array{status: int, headers: array<string, string>, body: string, stderr: string}
     */
    public function get(string $script, string $query = '', float $timeout = 10.0): array
    {
        $socket = @stream_socket_client($this->address, $errno, $errstr, $timeout);
        if ($socket === false) {
            throw new \RuntimeException(sprintf('cannot connect to php-fpm at %s: %s', $this->address, $errstr));
        }
        stream_set_timeout($socket, (int) ceil($timeout));
        try {
            $params = [
                'GATEWAY_INTERFACE' => 'FastCGI/1.0',
                'REQUEST_METHOD' => 'GET',
                'SCRIPT_FILENAME' => $script,
                'SCRIPT_NAME' => '/' . basename($script),
                'REQUEST_URI' => '/' . basename($script) . ($query !== '' ? '?' . $query : ''),
                'QUERY_STRING' => $query,
                'SERVER_SOFTWARE' => 'cometbox-tests',
                'SERVER_PROTOCOL' => 'HTTP/1.1',
                'SERVER_NAME' => 'localhost',
                'SERVER_PORT' => '80',
                'REMOTE_ADDR' => '127.0.0.1',
                'CONTENT_LENGTH' => '0',
            ];
            $pairs = '';
            foreach ($params as $name => $value) {
                $pairs .= self::length(strlen($name)) . self::length(strlen($value)) . $name . $value;
            }
            $out = self::record(self::BEGIN_REQUEST, pack('nCx5', self::RESPONDER, 0))
                . self::record(self::PARAMS, $pairs)
                . self::record(self::PARAMS, '')
                . self::record(self::STDIN, '');
            if (fwrite($socket, $out) !== strlen($out)) {
                throw new \RuntimeException('cannot write the FastCGI request');
            }

            $stdout = '';
            $stderr = '';
            while (true) {
                $header = self::read($socket, 8);
                $h = unpack('Cversion/Ctype/nid/nlength/Cpadding', $header);
                $content = self::read($socket, $h['length'] + $h['padding']);
                $content = substr($content, 0, $h['length']);
                if ($h['type'] === self::STDOUT) {
                    $stdout .= $content;
                } elseif ($h['type'] === self::STDERR) {
                    $stderr .= $content;
                } elseif ($h['type'] === self::END_REQUEST) {
                    break;
                }
            }
        } finally {
            fclose($socket);
        }

        $split = strpos($stdout, "\r\n\r\n");
        $head = $split === false ? '' : substr($stdout, 0, $split);
        $body = $split === false ? $stdout : substr($stdout, $split + 4);
        $status = 200;
        $headers = [];
        foreach ($head === '' ? [] : explode("\r\n", $head) as $line) {
            [$name, $value] = array_map('trim', explode(':', $line, 2) + [1 => '']);
            $headers[strtolower($name)] = $value;
            if (strtolower($name) === 'status') {
                $status = (int) $value;
            }
        }

        return ['status' => $status, 'headers' => $headers, 'body' => $body, 'stderr' => $stderr];
    }

    private static function record(int $type, string $content): string
    {
        return pack('CCnnCx', self::VERSION, $type, 1, strlen($content), 0) . $content;
    }

    private static function length(int $n): string
    {
        return $n < 128 ? chr($n) : pack('N', $n | 0x80000000);
    }

    /** @param resource $socket */
    private static function read($socket, int $n): string
    {
        $data = '';
        while (strlen($data) < $n) {
            $part = fread($socket, $n - strlen($data));
            if ($part === false || $part === '') {
                $meta = stream_get_meta_data($socket);
                throw new \RuntimeException($meta['timed_out'] ? 'php-fpm did not answer in time' : 'php-fpm closed the connection mid-answer');
            }
            $data .= $part;
        }

        return $data;
    }
}
