<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance\Support;

use Cometbox\Exception\TransportException;
use Cometbox\Transport\Request;
use Cometbox\Transport\Response;
use Cometbox\Transport\Transport;

/**
 * Wraps a real transport: records every exchange, and can change a request
 * on its way out or lose answers on their way back, to play the network's
 * tricks on the client against a real node.
 */
final class RecordingTransport implements Transport
{
    private Transport $inner;

    /** @var array<int, array{request: Request, response: ?Response, error: ?TransportException}> */
    private array $exchanges = [];

    /** @var callable(string): string|null */
    private $rewriteBody;

    private int $answersToLose = 0;

    public function __construct(Transport $inner)
    {
        $this->inner = $inner;
    }

    /**
     * Rewrites each request body before it is sent, e.g. to break it past
     * the client's own checks.
     *
     * @param callable(string): string $rewrite
     */
    public function rewriteBodies(callable $rewrite): self
    {
        $this->rewriteBody = $rewrite;

        return $this;
    }

    /**
     * Sends the next $count requests for real, then throws their answers
     * away as if the connection had dropped on the way back.
     */
    public function loseAnswers(int $count): self
    {
        $this->answersToLose = $count;

        return $this;
    }

    public function send(Request $request): Response
    {
        if ($this->rewriteBody !== null) {
            $request = new Request($request->method(), $request->url(), $request->headers(), ($this->rewriteBody)($request->body()), $request->timeout(), $request->connectTimeout());
        }
        try {
            $response = $this->inner->send($request);
        } catch (TransportException $e) {
            $this->exchanges[] = ['request' => $request, 'response' => null, 'error' => $e];
            throw $e;
        }
        if ($this->answersToLose > 0) {
            $this->answersToLose--;
            $e = new TransportException(sprintf('%s %s: the answer (%d) was lost on the way back', $request->method(), $request->url(), $response->status()));
            $this->exchanges[] = ['request' => $request, 'response' => $response, 'error' => $e];
            throw $e;
        }
        $this->exchanges[] = ['request' => $request, 'response' => $response, 'error' => null];

        return $response;
    }

    /** @return array<int, array{request: Request, response: ?Response, error: ?TransportException}> */
    public function exchanges(): array
    {
        return $this->exchanges;
    }

    /**
     * One line per request: "URL -> status", "URL -> status (lost)" or
     * "URL -> no answer".
     *
     * @return string[]
     */
    public function summary(): array
    {
        return array_map(static function (array $x): string {
            if ($x['response'] === null) {
                return $x['request']->url() . ' -> no answer';
            }

            return $x['request']->url() . ' -> ' . $x['response']->status() . ($x['error'] !== null ? ' (lost)' : '');
        }, $this->exchanges);
    }
}
