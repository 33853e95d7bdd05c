<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Client;
use Cometbox\Exception\ApiException;
use Cometbox\Exception\TransportException;
use Cometbox\Internal\NodePool;
use Cometbox\Tests\Fake\FakeClock;
use Cometbox\Tests\Fake\FakeTransport;
use Cometbox\Transport\Request;
use Cometbox\Transport\Response;
use PHPUnit\Framework\TestCase;

/**
 * Retries, failover, Retry-After and the time budget: NodePool on a fake
 * clock, and the Client on top of it.
 */
final class FailoverTest extends TestCase
{
    private const A = 'http://a:8080';
    private const B = 'http://b:8080';
    private const C = 'http://c:8080';

    public function testAnUnreachableNodeFailsOverToTheNext(): void
    {
        $transport = new FakeTransport([self::refused(self::A), self::ok()]);
        $pool = $this->pool([self::A, self::B], $transport);

        self::assertSame('ok from ' . self::B, $this->post($pool));
        self::assertSame([self::A . '/publish', self::B . '/publish'], $transport->urls());
    }

    public function testA503FailsOverToTheNext(): void
    {
        $transport = new FakeTransport([self::unavailable(3), self::ok()]);
        $clock = new FakeClock();
        $pool = $this->pool([self::A, self::B], $transport, $clock);

        self::assertSame('ok from ' . self::B, $this->post($pool));
        self::assertSame([], $clock->sleeps(), 'another node is free: no waiting for the Retry-After of the first');
    }

    public function testEveryAttemptSendsTheSameKeyAndBody(): void
    {
        $transport = new FakeTransport([self::refused(self::A), self::unavailable(1), self::timedOut(), static function (Request $r): Response {
            return FakeTransport::receipt($r);
        }]);
        $client = new Client([self::A, self::B, self::C], 's', 10.0, $transport, '', Client::FORMAT_XML, 4);

        self::assertSame([1, 1], $client->sendMany([['to' => 'alice', 'data' => 'x'], ['to' => 'bob', 'data' => 'y']]));

        $requests = $transport->requests();
        self::assertCount(4, $requests);
        $key = $requests[0]->header('Idempotency-Key');
        self::assertMatchesRegularExpression('/^[0-9a-f]{32}$/', (string) $key);
        foreach ($requests as $request) {
            self::assertSame($key, $request->header('Idempotency-Key'));
            self::assertSame($requests[0]->body(), $request->body());
            self::assertSame('Bearer s', $request->header('Authorization'));
        }
    }

    /**
     * @dataProvider clientErrors
     */
    public function testA4xxIsNeverRetried(int $status, string $code): void
    {
        $transport = new FakeTransport([FakeTransport::error($status, $code, 'what is wrong'), self::ok()]);
        $client = new Client([self::A, self::B, self::C], '', 2.0, $transport);

        try {
            $client->send('alice', 'x');
            self::fail('no exception');
        } catch (ApiException $e) {
            self::assertSame($status, $e->getStatus());
            self::assertSame($status, $e->getCode());
            self::assertSame($code, $e->getErrorCode());
            self::assertSame('what is wrong', $e->getExplanation());
            self::assertContains($e->getNode(), [self::A, self::B, self::C]);
            self::assertSame(sprintf('cometbox node %s answered %d %s: what is wrong', $e->getNode(), $status, $code), $e->getMessage());
        }
        self::assertCount(1, $transport->requests());
    }

    /** @return iterable<string, array{int, string}> */
    public function clientErrors(): iterable
    {
        yield '400' => [400, 'invalid_client'];
        yield '401' => [401, 'unauthorized'];
        yield '403' => [403, 'cross_origin'];
        yield '409' => [409, 'idempotency_conflict'];
        yield '413' => [413, 'message_too_large'];
        yield '415' => [415, 'unsupported_media_type'];
        yield '429' => [429, 'too_many_polls'];
    }

    public function testWhenEveryAttemptFailsTheErrorSaysHowToRetry(): void
    {
        $transport = new FakeTransport([self::refused(self::A), self::unavailable(1), self::refused(self::A)]);
        $clock = new FakeClock();
        $client = $this->pool([self::A, self::B], $transport, $clock, 10.0, 3);

        try {
            $this->post($client, 'the-key');
            self::fail('no exception');
        } catch (TransportException $e) {
            self::assertSame('the-key', $e->getIdempotencyKey());
            self::assertSame(3, $e->getAttempts());
            self::assertStringContainsString('after 3 attempts (no attempts left of 3); idempotency key the-key', $e->getMessage());
            self::assertStringContainsString('http://a:8080/publish: connection refused', $e->getMessage());
            self::assertStringContainsString('cometbox node http://b:8080 answered 503 unavailable: retry shortly (Retry-After: 1)', $e->getMessage());
            self::assertInstanceOf(TransportException::class, $e->getPrevious());
        }
        self::assertSame([self::A . '/publish', self::B . '/publish', self::A . '/publish'], $transport->urls());
        self::assertSame([0.25], $clock->sleeps(), 'A is set aside for a quarter second after it refused');
    }

    public function testWhenEveryNodeAnswers503TheLastAnswerIsThePrevious(): void
    {
        $transport = new FakeTransport([self::unavailable(5)]);
        $pool = $this->pool([self::A, self::B], $transport, new FakeClock(), 2.0);

        try {
            $this->post($pool);
            self::fail('no exception');
        } catch (TransportException $e) {
            $previous = $e->getPrevious();
            self::assertInstanceOf(ApiException::class, $previous);
            self::assertSame(503, $previous->getStatus());
            self::assertSame('unavailable', $previous->getErrorCode());
            self::assertSame(5, $previous->getRetryAfter());
            self::assertStringContainsString('every node asked to wait; the next is free in 5.00s, past the 2s timeout', $e->getMessage());
        }
        self::assertCount(2, $transport->requests());
    }

    public function testRetryAfterIsHonouredWithinTheBudget(): void
    {
        $transport = new FakeTransport([self::unavailable(1), self::ok()]);
        $clock = new FakeClock();
        $pool = $this->pool([self::A], $transport, $clock, 2.0);

        self::assertSame('ok from ' . self::A, $this->post($pool));
        self::assertSame([1.0], $clock->sleeps());
    }

    public function testARetryAfterBeyondTheBudgetEndsTheCallWithoutWaiting(): void
    {
        $transport = new FakeTransport([self::unavailable(3), self::ok()]);
        $clock = new FakeClock();
        $pool = $this->pool([self::A], $transport, $clock, 2.0);

        $this->expectException(TransportException::class);
        try {
            $this->post($pool);
        } finally {
            self::assertSame([], $clock->sleeps());
            self::assertCount(1, $transport->requests());
        }
    }

    public function testRetryAfterAsAnHttpDate(): void
    {
        $at = gmdate('D, d M Y H:i:s', time() + 30) . ' GMT';
        $answer = new Response(503, ['Retry-After' => $at], '');

        self::assertEqualsWithDelta(30, $answer->retryAfter(), 2);
        self::assertNull((new Response(503, ['Retry-After' => 'soon'], ''))->retryAfter());
        self::assertNull((new Response(503, [], ''))->retryAfter());
    }

    public function testA5xxWithoutRetryAfterSetsTheNodeAsideForASecond(): void
    {
        $transport = new FakeTransport([new Response(502, [], '<html>Bad Gateway</html>'), self::ok()]);
        $clock = new FakeClock();
        $pool = $this->pool([self::A], $transport, $clock, 5.0);

        self::assertSame('ok from ' . self::A, $this->post($pool));
        self::assertSame([1.0], $clock->sleeps());
    }

    public function testEachAttemptGetsWhatIsLeftOfTheBudget(): void
    {
        $clock = new FakeClock();
        $transport = new FakeTransport([self::timedOut(), self::ok()], $clock, 0.75);
        $pool = $this->pool([self::A, self::B], $transport, $clock, 2.0, 3, 0.5);

        $this->post($pool);

        [$first, $second] = $transport->requests();
        self::assertEqualsWithDelta(1.0, $first->timeout(), 1e-9, 'half the budget: another node may be needed');
        self::assertEqualsWithDelta(0.5, $first->connectTimeout(), 1e-9);
        self::assertEqualsWithDelta(0.625, $second->timeout(), 1e-9, 'half of what is left');
        self::assertEqualsWithDelta(0.5, $second->connectTimeout(), 1e-9);
    }

    public function testTheLastAttemptAndASingleNodeGetAllThatIsLeft(): void
    {
        $clock = new FakeClock();
        $transport = new FakeTransport([self::timedOut(), self::ok()], $clock, 0.5);
        $this->post($this->pool([self::A, self::B], $transport, $clock, 2.0, 2));
        self::assertEqualsWithDelta(1.5, $transport->requests()[1]->timeout(), 1e-9, 'the last attempt allowed');

        $transport = new FakeTransport([self::ok()]);
        $this->post($this->pool([self::A], $transport, null, 2.0));
        self::assertEqualsWithDelta(2.0, $transport->requests()[0]->timeout(), 1e-9, 'a single node');
    }

    public function testAHangingNodeLeavesTimeForAnother(): void
    {
        $clock = new FakeClock();
        $transport = new FakeTransport([static function (Request $request) use ($clock): Response {
            $clock->advance($request->timeout()); // hangs until its timeout

            throw new TransportException('POST ' . $request->url() . ': timed out');
        }, self::ok()]);
        $pool = $this->pool([self::A, self::B], $transport, $clock, 2.0);

        self::assertSame('ok from ' . self::B, $this->post($pool));
    }

    public function testNoAttemptStartsAfterTheBudgetIsSpent(): void
    {
        $clock = new FakeClock();
        $transport = new FakeTransport([self::timedOut()], $clock, 2.0);
        $pool = $this->pool([self::A, self::B], $transport, $clock, 2.0);

        try {
            $this->post($pool);
            self::fail('no exception');
        } catch (TransportException $e) {
            self::assertStringContainsString('(the 2s timeout passed)', $e->getMessage());
        }
        self::assertCount(1, $transport->requests());
    }

    public function testCallsTakeTurnsStartingAtEachNode(): void
    {
        $transport = new FakeTransport([self::ok()]);
        $pool = $this->pool([self::A, self::B, self::C], $transport, null, 2.0, 3, 1.0, 1);

        for ($i = 0; $i < 4; $i++) {
            $this->post($pool);
        }
        self::assertSame([self::B, self::C, self::A, self::B], array_map(static function (string $url): string {
            return substr($url, 0, -strlen('/publish'));
        }, $transport->urls()));
    }

    public function testTheClientStartsAtARandomNodeAndTakesTurns(): void
    {
        $transport = FakeTransport::node();
        $client = new Client([self::A, self::B, self::C], '', 2.0, $transport);
        for ($i = 0; $i < 3; $i++) {
            $client->send('alice', 'x');
        }

        $urls = $transport->urls();
        sort($urls);
        self::assertSame([self::A . '/publish', self::B . '/publish', self::C . '/publish'], $urls);
    }

    public function testMaxAttemptsBoundsTheRetries(): void
    {
        $transport = new FakeTransport([self::refused(self::A)]);
        $client = new Client([self::A], '', 30.0, $transport, '', Client::FORMAT_XML, 2);

        $this->expectException(TransportException::class);
        $this->expectExceptionMessage('after 2 attempts');
        $client->send('alice', 'x');
    }

    public function testAnUnusableAnswerIsRetriedElsewhere(): void
    {
        $transport = new FakeTransport([new Response(200, [], 'not a receipt'), static function (Request $r): Response {
            return FakeTransport::receipt($r);
        }]);
        $client = new Client([self::A, self::B], '', 2.0, $transport);

        self::assertSame(1, $client->send('alice', 'x'));
        self::assertCount(2, $transport->requests());
    }

    /**
     * @param string[] $nodes
     */
    private function pool(
        array $nodes,
        FakeTransport $transport,
        ?FakeClock $clock = null,
        float $timeout = 2.0,
        int $maxAttempts = 3,
        float $connectTimeout = 1.0,
        int $start = 0
    ): NodePool {
        return new NodePool($nodes, $transport, $timeout, $connectTimeout, $maxAttempts, $clock ?? new FakeClock(), $start);
    }

    private function post(NodePool $pool, string $key = 'k'): string
    {
        return $pool->post('/publish', ['Idempotency-Key' => $key], '<messages/>', $key, static function (Response $answer, string $node): string {
            return $answer->body() . ' from ' . $node;
        });
    }

    private static function ok(): Response
    {
        return new Response(200, [], 'ok');
    }

    private static function unavailable(int $retryAfter): Response
    {
        return FakeTransport::error(503, 'unavailable', 'retry shortly', ['Retry-After' => (string) $retryAfter]);
    }

    private static function refused(string $node): TransportException
    {
        return new TransportException('POST ' . $node . '/publish: connection refused');
    }

    private static function timedOut(): TransportException
    {
        return new TransportException('POST: timed out');
    }
}
