<?php

declare(strict_types=1);

namespace Cometbox\Transport;

/**
 * One HTTP request, as a transport is asked to send it. Immutable.
 */
final class Request
{
    private string $method;

    private string $url;

    /** @var array<string, string> */
    private array $headers;

    private string $body;

    private float $timeout;

    private float $connectTimeout;

    /**
     * @param array<string, string> $headers        name => value; Host, Content-Length and
     *                                              Connection are the transport's business
     * @param float                 $timeout        seconds for the whole exchange
     * @param float                 $connectTimeout seconds to open the connection, at most $timeout
     */
    public function __construct(string $method, string $url, array $headers, string $body, float $timeout, float $connectTimeout)
    {
        $this->method = $method;
        $this->url = $url;
        $this->headers = $headers;
        $this->body = $body;
        $this->timeout = $timeout;
        $this->connectTimeout = min($connectTimeout, $timeout);
    }

    public function method(): string
    {
        return $this->method;
    }

    public function url(): string
    {
        return $this->url;
    }

    /** @return array<string, string> */
    public function headers(): array
    {
        return $this->headers;
    }

    public function header(string $name): ?string
    {
        foreach ($this->headers as $key => $value) {
            if (strcasecmp($key, $name) === 0) {
                return $value;
            }
        }

        return null;
    }

    public function body(): string
    {
        return $this->body;
    }

    public function timeout(): float
    {
        return $this->timeout;
    }

    public function connectTimeout(): float
    {
        return $this->connectTimeout;
    }

    /**
     * The request's header lines, "Name: value", without the ones a
     * transport writes itself.
     *
     * @return string[]
     */
    public function headerLines(): array
    {
        $lines = [];
        foreach ($this->headers as $name => $value) {
            $lines[] = $name . ': ' . $value;
        }

        return $lines;
    }
}
