<?php

declare(strict_types=1);

namespace Cometbox\Transport;

use Cometbox\Exception\TransportException;

/**
 * Bounds the reads on a stream by an absolute deadline (a microtime).
 *
 * @internal shared by StreamTransport and SocketTransport
 */
final class Deadline
{
    private float $at;

    private Request $request;

    public function __construct(Request $request)
    {
        $this->at = microtime(true) + $request->timeout();
        $this->request = $request;
    }

    /**
     * Lets the next read on $stream wait at most until the deadline.
     *
     * @param resource $stream
     *
     * @throws TransportException once the deadline has passed
     */
    public function limit($stream): void
    {
        $left = $this->at - microtime(true);
        if ($left <= 0) {
            throw $this->failure('no complete answer within the timeout');
        }
        $seconds = (int) floor($left);
        stream_set_timeout($stream, $seconds, (int) (($left - $seconds) * 1e6));
    }

    /**
     * The error for an answer that stopped coming: timed out or cut.
     *
     * @param resource $stream
     */
    public function cutShort($stream, string $what): TransportException
    {
        $timedOut = (bool) (stream_get_meta_data($stream)['timed_out'] ?? false);

        return $this->failure(($timedOut ? 'timed out' : 'connection closed') . ' ' . $what);
    }

    public function failure(string $what): TransportException
    {
        return new TransportException(sprintf(
            '%s %s: %s (timeout %ss)',
            $this->request->method(),
            $this->request->url(),
            $what,
            round($this->request->timeout(), 3)
        ));
    }
}
