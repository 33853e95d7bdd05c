<?php

declare(strict_types=1);

namespace Cometbox\Internal;

use Cometbox\Exception\ApiException;
use Cometbox\Exception\TransportException;
use Cometbox\Transport\Request;
use Cometbox\Transport\Response;
use Cometbox\Transport\Transport;

/**
 * Sends a publish, or a server API call, to the nodes, failing over from
 * one to the next.
 *
 * Calls take turns starting at each node (round-robin from a random one).
 * Within a call, a node that could not be reached, answered 5xx or gave an
 * unusable answer is set aside, for its Retry-After on a 5xx (one second
 * without one) or a quarter second after a network error, and the next
 * node is tried at once; only when every node is set aside does the call
 * wait, and only if the wait ends within the call's time budget. With
 * several nodes, an attempt may use at most half of what is left of the
 * budget (the last attempt allowed, all of it), so that a node that hangs
 * leaves time to try another. A 4xx
 * answer ends the call at once: the request is wrong, and retrying it
 * cannot help. Every attempt of a call sends the same body and headers,
 * idempotency key included, so a batch that reached Redis before its answer
 * was lost is not enqueued twice.
 *
 * @internal used by Client
 */
final class NodePool
{
    /** How long a node that could not be reached is set aside, in seconds. */
    private const UNREACHABLE_PAUSE = 0.25;

    /** How long a node that answered 5xx without Retry-After is set aside. */
    private const DEFAULT_RETRY_AFTER = 1.0;

    /** @var string[] */
    private array $nodes;

    private Transport $transport;

    private float $timeout;

    private float $connectTimeout;

    private int $maxAttempts;

    private Clock $clock;

    private int $next;

    /**
     * @param string[] $nodes          base URLs, already checked
     * @param float    $timeout        the budget of one call, all attempts and waits together
     * @param float    $connectTimeout the most one attempt may spend connecting
     * @param int      $maxAttempts    the most requests one call makes
     * @param int|null $start          the node the first call starts at; null: a random one
     */
    public function __construct(
        array $nodes,
        Transport $transport,
        float $timeout,
        float $connectTimeout,
        int $maxAttempts,
        ?Clock $clock = null,
        ?int $start = null
    ) {
        $this->nodes = array_values($nodes);
        $this->transport = $transport;
        $this->timeout = $timeout;
        $this->connectTimeout = $connectTimeout;
        $this->maxAttempts = $maxAttempts;
        $this->clock = $clock ?? new SystemClock();
        $this->next = $start ?? random_int(0, count($this->nodes) - 1);
    }

    /**
     * POSTs $body to $path on one node after another until one accepts it.
     *
     * @template T
     *
     * @param array<string, string>         $headers
     * @param string                        $key     the idempotency key, for the error that says how to retry
     * @param callable(Response, string): T $accept  turns a 2xx answer and its node into the result; it
     *                                               throws TransportException for an unusable answer
     *
     * @return T
     *
     * @throws ApiException       on a 4xx answer (and other non-2xx answers below 500)
     * @throws TransportException when no attempt succeeded within the budget
     */
    public function post(string $path, array $headers, string $body, string $key, callable $accept)
    {
        return $this->send('POST', $path, $headers, $body, $accept, static function (array $failures, \Throwable $last, string $why) use ($key): TransportException {
            return TransportException::afterAttempts($key, $failures, $last, $why);
        });
    }

    /**
     * Sends a request that may be made again as it is (a server API call)
     * to one node after another until one answers 2xx, as post() does.
     *
     * @template T
     *
     * @param array<string, string>         $headers
     * @param callable(Response, string): T $accept turns a 2xx answer and its node into the result
     *
     * @return T
     *
     * @throws ApiException       on a 4xx answer
     * @throws TransportException when no attempt succeeded within the budget
     */
    public function call(string $method, string $path, array $headers, string $body, callable $accept)
    {
        return $this->send($method, $path, $headers, $body, $accept, static function (array $failures, \Throwable $last, string $why) use ($method, $path): TransportException {
            return TransportException::afterCallAttempts($method . ' ' . $path, $failures, $last, $why);
        });
    }

    /**
     * @template T
     *
     * @param array<string, string>                                              $headers
     * @param callable(Response, string): T                                      $accept
     * @param callable(string[], \Throwable, string): TransportException         $failed builds the exception of a call that failed
     *
     * @return T
     */
    private function send(string $method, string $path, array $headers, string $body, callable $accept, callable $failed)
    {
        $count = count($this->nodes);
        $deadline = $this->clock->now() + $this->timeout;
        $cursor = $this->next;
        $this->next = ($this->next + 1) % $count;
        $setAsideUntil = array_fill(0, $count, 0.0);
        $failures = [];
        $last = null;
        $why = sprintf('no attempts left of %d', $this->maxAttempts);

        for ($attempt = 0; $attempt < $this->maxAttempts; $attempt++) {
            $now = $this->clock->now();
            $i = $this->pick($cursor, $setAsideUntil, $now);
            $cursor = $i + 1;
            $wait = max(0.0, $setAsideUntil[$i] - $now);
            if ($now + $wait >= $deadline) {
                $why = $wait > 0
                    ? sprintf('every node asked to wait; the next is free in %.2fs, past the %ss timeout', $wait, $this->timeout)
                    : sprintf('the %ss timeout passed', $this->timeout);
                break;
            }
            $this->clock->sleep($wait);

            $node = $this->nodes[$i];
            $budget = $deadline - $this->clock->now();
            if ($count > 1 && $attempt < $this->maxAttempts - 1) {
                $budget /= 2; // a node that hangs must leave time for another
            }
            try {
                $answer = $this->transport->send(new Request($method, $node . $path, $headers, $body, $budget, min($budget, $this->connectTimeout)));
                if ($answer->isSuccessful()) {
                    return $accept($answer, $node);
                }
                $error = ApiException::fromResponse($node, $answer);
                if ($answer->status() < 500) {
                    throw $error;
                }
                $retryAfter = $answer->retryAfter();
                $failures[] = $error->getMessage() . ($retryAfter !== null ? sprintf(' (Retry-After: %d)', $retryAfter) : '');
                $last = $error;
                $setAsideUntil[$i] = $this->clock->now() + ($retryAfter ?? self::DEFAULT_RETRY_AFTER);
            } catch (TransportException $e) {
                $failures[] = $e->getMessage();
                $last = $e;
                $setAsideUntil[$i] = $this->clock->now() + self::UNREACHABLE_PAUSE;
            }
        }

        if ($last === null) { // the budget was spent before the first attempt: a timeout of ~0
            $last = new TransportException(sprintf('no attempt made within the %ss timeout', $this->timeout));
            $failures[] = $last->getMessage();
        }
        throw $failed($failures, $last, $why);
    }

    /**
     * The first node, in turn from $cursor, that is not set aside at $now,
     * or else the one that is free soonest.
     *
     * @param float[] $setAsideUntil
     */
    private function pick(int $cursor, array $setAsideUntil, float $now): int
    {
        $count = count($this->nodes);
        $best = null;
        for ($k = 0; $k < $count; $k++) {
            $i = ($cursor + $k) % $count;
            if ($setAsideUntil[$i] <= $now) {
                return $i;
            }
            if ($best === null || $setAsideUntil[$i] < $setAsideUntil[$best]) {
                $best = $i;
            }
        }

        return (int) $best;
    }
}
