<?php

declare(strict_types=1);

namespace Cometbox\Exception;

use Cometbox\Transport\Response;

/**
 * A node answered with an error.
 *
 * Thrown directly for a 4xx answer: the request itself is wrong (bad
 * secret, payload over the node's limit, ...), nothing was enqueued, and
 * sending it again will not help, so it is never retried. A 5xx answer is
 * retried on the other nodes; when every attempt failed, the
 * TransportException thrown then carries the last one as getPrevious().
 *
 * getCode() is the HTTP status, as in pusher-http-php's ApiErrorException;
 * getErrorCode() is the node's stable error code (docs/protocol.md,
 * "Errors"), e.g. "invalid_client", which is what code should branch on.
 */
final class ApiException extends \RuntimeException implements CometboxException
{
    private string $node;

    private string $errorCode;

    private string $explanation;

    private ?int $retryAfter;

    public function __construct(string $node, int $status, string $errorCode, string $explanation, ?int $retryAfter = null)
    {
        $what = $errorCode !== '' ? $status . ' ' . $errorCode : (string) $status;
        parent::__construct(sprintf('cometbox node %s answered %s: %s', $node, $what, $explanation), $status);
        $this->node = $node;
        $this->errorCode = $errorCode;
        $this->explanation = $explanation;
        $this->retryAfter = $retryAfter;
    }

    /**
     * Reads an error answer: the node's XML (`<error code="...">text</error>`)
     * or JSON (`{"error":{"code":"...","message":"..."}}`) body, or, for
     * answers that come from something else (a proxy, the HTTP server
     * itself), the start of the body as the explanation and no code.
     */
    public static function fromResponse(string $node, Response $response): self
    {
        $body = trim($response->body());
        $code = '';
        $explanation = '';
        if (preg_match('~<error\s+code="([^"]*)"\s*>(.*?)</error>~s', $body, $m) === 1) {
            $code = self::decodeXml($m[1]);
            $explanation = self::decodeXml($m[2]);
        } elseif ($body !== '' && $body[0] === '{') {
            $doc = json_decode($body, true);
            if (is_array($doc) && isset($doc['error']) && is_array($doc['error'])) {
                $code = is_string($doc['error']['code'] ?? null) ? $doc['error']['code'] : '';
                $explanation = is_string($doc['error']['message'] ?? null) ? $doc['error']['message'] : '';
            }
        }
        if ($code === '' && $explanation === '') {
            $explanation = self::excerpt($body);
        }

        return new self($node, $response->status(), $code, $explanation, $response->retryAfter());
    }

    /** The base URL of the node that answered. */
    public function getNode(): string
    {
        return $this->node;
    }

    /** The HTTP status, the same as getCode(). */
    public function getStatus(): int
    {
        return $this->getCode();
    }

    /**
     * The node's stable error code, e.g. "invalid_client" or
     * "message_too_large"; empty when the answer did not come from a
     * cometbox node.
     */
    public function getErrorCode(): string
    {
        return $this->errorCode;
    }

    /** The node's explanation, naming the message and what is wrong with it. */
    public function getExplanation(): string
    {
        return $this->explanation;
    }

    /** The answer's Retry-After, in seconds, when it had one. */
    public function getRetryAfter(): ?int
    {
        return $this->retryAfter;
    }

    private static function decodeXml(string $text): string
    {
        return html_entity_decode($text, ENT_QUOTES | ENT_XML1, 'UTF-8');
    }

    private static function excerpt(string $body): string
    {
        if ($body === '') {
            return '(empty body)';
        }
        $line = preg_replace('/\s+/', ' ', $body) ?? $body;

        return strlen($line) > 200 ? substr($line, 0, 200) . '...' : $line;
    }
}
