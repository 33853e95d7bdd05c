<?php

declare(strict_types=1);

namespace Cometbox\Transport;

/**
 * One HTTP answer, whatever its status. Immutable.
 */
final class Response
{
    private int $status;

    /** @var array<string, string> */
    private array $headers;

    private string $body;

    /**
     * @param array<string, string> $headers name => value; names are matched
     *                                       without regard to case
     */
    public function __construct(int $status, array $headers, string $body)
    {
        $this->status = $status;
        $this->headers = [];
        foreach ($headers as $name => $value) {
            $this->headers[strtolower((string) $name)] = $value;
        }
        $this->body = $body;
    }

    /**
     * Builds a Response from the header lines of an HTTP/1.x answer: the
     * status line, then "Name: value" lines. Repeated headers are joined
     * with ", " as RFC 9110 allows.
     *
     * @param string[] $lines
     */
    public static function fromHeaderLines(array $lines, string $body): ?self
    {
        $status = null;
        $headers = [];
        foreach ($lines as $line) {
            $line = rtrim($line, "\r\n");
            if (preg_match('~^HTTP/\d(?:\.\d)?\s+(\d{3})~', $line, $m) === 1) {
                $status = (int) $m[1]; // a later status line (after a 1xx) starts over
                $headers = [];
                continue;
            }
            $colon = strpos($line, ':');
            if ($colon === false || $colon === 0) {
                continue;
            }
            $name = strtolower(trim(substr($line, 0, $colon)));
            $value = trim(substr($line, $colon + 1));
            $headers[$name] = isset($headers[$name]) ? $headers[$name] . ', ' . $value : $value;
        }

        return $status === null ? null : new self($status, $headers, $body);
    }

    public function status(): int
    {
        return $this->status;
    }

    public function header(string $name): ?string
    {
        return $this->headers[strtolower($name)] ?? null;
    }

    /** @return array<string, string> lower-case name => value */
    public function headers(): array
    {
        return $this->headers;
    }

    public function body(): string
    {
        return $this->body;
    }

    public function isSuccessful(): bool
    {
        return $this->status >= 200 && $this->status < 300;
    }

    /**
     * The Retry-After header in seconds (from delta-seconds or an
     * HTTP-date), or null when absent or unreadable.
     */
    public function retryAfter(): ?int
    {
        $value = $this->header('Retry-After');
        if ($value === null) {
            return null;
        }
        if (preg_match('/^\s*(\d{1,9})\s*$/', $value, $m) === 1) {
            return (int) $m[1];
        }
        $time = strtotime($value);

        return $time === false ? null : max(0, $time - time());
    }
}
