<?php

declare(strict_types=1);

namespace Cometbox\Exception;

/**
 * No node confirmed the publish: the network failed, the answer was lost
 * or cut, the timeout passed, or the nodes answered 5xx (e.g. 503 when
 * Redis is down), on every attempt within the client's time budget.
 *
 * The messages may or may not have been enqueued. Sending the same batch
 * again with the same idempotency key (getIdempotencyKey()) enqueues it at
 * most once, on any node, for the node's -idempotency-ttl (10 minutes by
 * default):
 *
 *     $client->batch()->idempotencyKey($e->getIdempotencyKey())->add(...)->send();
 *
 * getPrevious() is the last attempt's failure: another TransportException
 * for a network failure, or an ApiException for a 5xx answer.
 *
 * Transports throw it too, for one failed request, without a key.
 */
final class TransportException extends \RuntimeException implements CometboxException
{
    private string $idempotencyKey = '';

    private int $attempts = 0;

    /**
     * The failure of a whole publish call, after its last attempt.
     *
     * @param string[]   $failures one line per attempt: "NODE: what went wrong"
     * @param \Throwable $last     the last attempt's failure
     */
    public static function afterAttempts(string $idempotencyKey, array $failures, \Throwable $last, string $why): self
    {
        $e = new self(sprintf(
            'cometbox publish failed after %d attempt%s (%s); idempotency key %s: %s',
            count($failures),
            count($failures) === 1 ? '' : 's',
            $why,
            $idempotencyKey,
            implode('; ', $failures)
        ), 0, $last);
        $e->idempotencyKey = $idempotencyKey;
        $e->attempts = count($failures);

        return $e;
    }

    /**
     * The failure of a whole server API call (which may be made again as
     * it is), after its last attempt.
     *
     * @param string[]   $failures one line per attempt: "NODE: what went wrong"
     * @param \Throwable $last     the last attempt's failure
     */
    public static function afterCallAttempts(string $call, array $failures, \Throwable $last, string $why): self
    {
        $e = new self(sprintf(
            'cometbox %s failed after %d attempt%s (%s): %s',
            $call,
            count($failures),
            count($failures) === 1 ? '' : 's',
            $why,
            implode('; ', $failures)
        ), 0, $last);
        $e->attempts = count($failures);

        return $e;
    }

    /**
     * The batch's idempotency key: send the same batch again with it to
     * complete it without duplicates. Empty when thrown by a transport.
     */
    public function getIdempotencyKey(): string
    {
        return $this->idempotencyKey;
    }

    /** How many requests were made before giving up (0 when thrown by a transport). */
    public function getAttempts(): int
    {
        return $this->attempts;
    }
}
