<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Client;
use Cometbox\ClientInfo;
use Cometbox\Exception\ApiException;
use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Exception\TransportException;
use Cometbox\Presence;
use Cometbox\Tests\Fake\FakeTransport;
use Cometbox\Transport\Request;
use Cometbox\Transport\Response;
use PHPUnit\Framework\TestCase;

/**
 * The server API calls: what each sends, what it returns, and how it
 * fails.
 */
final class ServerApiTest extends TestCase
{
    private const A = 'http://node1:8080';
    private const B = 'http://node2:8080';

    /** @param array<string, mixed> $doc */
    private static function json(array $doc, int $status = 200): Response
    {
        return new Response($status, ['Content-Type' => 'application/json'], json_encode($doc) . "\n");
    }

    public function testPresence(): void
    {
        $transport = new FakeTransport([self::json(['clients' => [
            ['client' => 'alice', 'online' => true, 'since' => 1800000000000],
            ['client' => 'user:42', 'online' => false, 'last_seen' => 1799999940000],
            ['client' => 'carol', 'online' => false],
        ]])]);
        $client = new Client([self::A], 'pub', 2.0, $transport);

        $presence = $client->presence(['alice', 'user:42', 'carol', 'alice']);

        self::assertSame(['alice', 'user:42', 'carol'], array_keys($presence));
        self::assertTrue($presence['alice']->isOnline());
        self::assertSame(1800000000000, $presence['alice']->since());
        self::assertNull($presence['alice']->lastSeen());
        self::assertFalse($presence['user:42']->isOnline());
        self::assertSame(1799999940000, $presence['user:42']->lastSeen());
        self::assertNull($presence['carol']->lastSeen());
        $request = $transport->lastRequest();
        self::assertSame('GET', $request->method());
        self::assertSame(self::A . '/api/presence?client=alice&client=user%3A42&client=carol', $request->url());
        self::assertSame('Bearer pub', $request->header('Authorization'));
        self::assertSame('', $request->body());
    }

    public function testPresenceOfManyClientsTakesSeveralRequests(): void
    {
        $transport = new FakeTransport([static function (Request $r): Response {
            preg_match_all('/client=([^&]*)/', $r->url(), $m);

            return self::json(['clients' => array_map(static function (string $c): array {
                return ['client' => rawurldecode($c), 'online' => true, 'since' => 1];
            }, $m[1])]);
        }]);
        $ids = [];
        for ($i = 0; $i < 250; $i++) {
            $ids[] = 'u' . $i;
        }

        $presence = (new Client([self::A], '', 2.0, $transport))->presence($ids);

        self::assertCount(250, $presence);
        self::assertCount(3, $transport->requests());
    }

    public function testTheAdminSecretWinsOverThePublishSecret(): void
    {
        $transport = new FakeTransport([self::json(['client' => 'alice', 'deleted' => true])]);
        $client = new Client([self::A], 'pub', 2.0, $transport, '', Client::FORMAT_XML, null, 1.0, 'adm');

        self::assertTrue($client->deleteQueue('alice'));

        $request = $transport->lastRequest();
        self::assertSame('DELETE', $request->method());
        self::assertSame(self::A . '/api/clients/alice', $request->url());
        self::assertSame('Bearer adm', $request->header('Authorization'));

        Client::fromOptions(['nodes' => [self::A], 'secret' => 'pub', 'adminSecret' => 'opt', 'transport' => $transport])->deleteQueue('x');
        self::assertSame('Bearer opt', $transport->lastRequest()->header('Authorization'));
    }

    public function testInspect(): void
    {
        $transport = new FakeTransport([self::json([
            'client' => 'alice', 'epoch' => 'k3x9q2ab', 'length' => 2, 'first_id' => 58, 'last_id' => 59,
            'online' => false, 'last_seen' => 1799999940000,
        ])]);

        $info = (new Client([self::A], '', 2.0, $transport))->inspect('alice');

        self::assertInstanceOf(ClientInfo::class, $info);
        self::assertSame(['alice', 'k3x9q2ab', 2, 58, 59], [$info->client(), $info->epoch(), $info->length(), $info->firstId(), $info->lastId()]);
        self::assertInstanceOf(Presence::class, $info->presence());
        self::assertFalse($info->presence()->isOnline());
        self::assertSame(1799999940000, $info->presence()->lastSeen());
        self::assertSame(self::A . '/api/clients/alice', $transport->lastRequest()->url());

        $off = new FakeTransport([self::json(['client' => 'bob', 'epoch' => '', 'length' => 0, 'first_id' => 0, 'last_id' => 0])]);
        self::assertNull((new Client([self::A], '', 2.0, $off))->inspect('bob')->presence());
    }

    public function testDisconnect(): void
    {
        $transport = new FakeTransport([
            self::json(['client' => 'alice', 'nodes' => 2, 'tokens_refused_until' => null]),
            self::json(['client' => 'alice', 'nodes' => 2, 'tokens_refused_until' => 1800003600]),
            self::json(['client' => 'alice', 'nodes' => 0, 'tokens_refused_until' => 1800086400]),
        ]);
        $client = new Client([self::A], 'pub', 2.0, $transport);

        self::assertNull($client->disconnect('alice'));
        self::assertSame('', $transport->lastRequest()->body());
        self::assertSame(self::A . '/api/clients/alice/disconnect', $transport->lastRequest()->url());
        self::assertSame('POST', $transport->lastRequest()->method());

        self::assertSame(1800003600, $client->disconnect('alice', true, 3600));
        self::assertSame('{"refuse_tokens":true,"token_ttl":3600}', $transport->lastRequest()->body());
        self::assertSame('application/json', $transport->lastRequest()->header('Content-Type'));

        self::assertSame(1800086400, $client->disconnect('alice', true));
        self::assertSame('{"refuse_tokens":true}', $transport->lastRequest()->body());
    }

    /**
     * @dataProvider badCalls
     */
    public function testBadInputSendsNothing(callable $call): void
    {
        $transport = new FakeTransport([]);
        $client = new Client([self::A], '', 2.0, $transport);

        try {
            $call($client);
            self::fail('no exception');
        } catch (InvalidArgumentException $e) {
            self::assertSame([], $transport->requests());
        }
    }

    /** @return iterable<string, array{callable}> */
    public function badCalls(): iterable
    {
        yield 'presence of a bad id' => [static function (Client $c): void {
            $c->presence(['ok', 'a b']);
        }];
        yield 'presence of a non-string' => [static function (Client $c): void {
            $c->presence([42]);
        }];
        yield 'inspect a bad id' => [static function (Client $c): void {
            $c->inspect('a/b');
        }];
        yield 'delete a bad id' => [static function (Client $c): void {
            $c->deleteQueue('');
        }];
        yield 'a lifetime without refusing' => [static function (Client $c): void {
            $c->disconnect('alice', false, 60);
        }];
        yield 'a lifetime of 0' => [static function (Client $c): void {
            $c->disconnect('alice', true, 0);
        }];
    }

    public function testA4xxIsThrownAtOnce(): void
    {
        $transport = new FakeTransport([FakeTransport::error(401, 'unauthorized', 'the server API needs the admin secret')]);
        $client = new Client([self::A, self::B], 'wrong', 2.0, $transport);

        try {
            $client->inspect('alice');
            self::fail('no exception');
        } catch (ApiException $e) {
            self::assertSame(401, $e->getStatus());
            self::assertSame('unauthorized', $e->getErrorCode());
            self::assertCount(1, $transport->requests());
        }
    }

    public function testA503FailsOverAndTheFailureNamesTheCall(): void
    {
        $transport = new FakeTransport([
            FakeTransport::error(503, 'unavailable', 'retry', ['Retry-After' => '1']),
            self::json(['client' => 'alice', 'deleted' => false]),
        ]);
        $client = new Client([self::A, self::B], '', 2.0, $transport);

        self::assertFalse($client->deleteQueue('alice'));
        self::assertCount(2, $transport->requests());

        $down = new FakeTransport([new TransportException('connection refused')]);
        try {
            (new Client([self::A], '', 0.5, $down, '', Client::FORMAT_XML, 2))->presence(['alice']);
            self::fail('no exception');
        } catch (TransportException $e) {
            self::assertStringContainsString('GET /api/presence?client=alice failed after', $e->getMessage());
            self::assertSame('', $e->getIdempotencyKey());
        }
    }

    public function testAnAnswerThatIsNotTheApisIsATransportFailure(): void
    {
        $transport = new FakeTransport([new Response(200, ['Content-Type' => 'text/html'], '<h1>proxy</h1>')]);

        $this->expectException(TransportException::class);
        (new Client([self::A], '', 2.0, $transport, '', Client::FORMAT_XML, 1))->inspect('alice');
    }
}
