<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Client;
use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Exception\TransportException;
use Cometbox\Format\JsonFormat;
use Cometbox\Format\XmlFormat;
use Cometbox\Message;
use Cometbox\Tests\Fake\FakeTransport;
use Cometbox\Transport\Request;
use Cometbox\Transport\Response;
use PHPUnit\Framework\TestCase;

/**
 * Groups: group messages in both formats and their receipts, the
 * membership calls, and what is refused before anything is sent.
 */
final class GroupsTest extends TestCase
{
    private const A = 'http://node1:8080';

    /** @param array<string, mixed> $doc */
    private static function json(array $doc, int $status = 200): Response
    {
        return new Response($status, ['Content-Type' => 'application/json'], json_encode($doc) . "\n");
    }

    private static function xml(string $queued): Response
    {
        return new Response(200, ['Content-Type' => 'application/xml; charset=utf-8'],
            '<?xml version="1.0" encoding="UTF-8"?>' . "\n<queued>" . $queued . "</queued>\n");
    }

    public function testSendToGroupInXml(): void
    {
        $transport = new FakeTransport([self::xml('<message group="room:42" members="2"/>')]);
        $client = new Client([self::A], 'pub', 2.0, $transport);

        self::assertSame(2, $client->sendToGroup('room:42', 'Hi & bye', 'alice'));

        $request = $transport->lastRequest();
        self::assertSame(self::A . '/publish', $request->url());
        self::assertStringContainsString('<message group="room:42" except="alice">Hi &amp; bye</message>', $request->body());
        self::assertSame('Bearer pub', $request->header('Authorization'));
    }

    public function testBothXmlWritersWriteGroups(): void
    {
        $messages = [Message::toGroup('g', [1, 2]), Message::of('bob', 'b'), Message::toGroup('h', 'y', 'carol')];
        $want = '<message group="g" type="json">[1,2]</message><message to="bob">b</message><message group="h" except="carol">y</message>';
        self::assertStringContainsString($want, (new XmlFormat(false))->encode($messages));
        if (class_exists(\XMLWriter::class)) {
            self::assertStringContainsString($want, (new XmlFormat(true))->encode($messages));
        }
    }

    public function testMixedBatchInJson(): void
    {
        $transport = new FakeTransport([self::json(['queued' => [
            ['to' => 'bob', 'id' => 7],
            ['group' => 'room:42', 'members' => 0],
            ['group' => 'g', 'members' => 3],
        ]])]);
        $client = new Client([self::A], '', 2.0, $transport, '', Client::FORMAT_JSON);

        $answer = $client->batch()->add('bob', 'direct')->addToGroup('room:42', ['k' => 1], 'alice')
            ->addMessage(Message::groupJson('g', 'a JSON string'))->send();

        self::assertSame([7, 0, 3], $answer);
        self::assertSame('{"messages":[{"to":"bob","data":"direct"},{"group":"room:42","except":"alice","data":{"k":1}},'
            . '{"group":"g","data":"a JSON string"}]}', $transport->lastRequest()->body());
    }

    public function testSendManyTakesGroupArrays(): void
    {
        $transport = new FakeTransport([self::json(['queued' => [['group' => 'g', 'members' => 5]]])]);
        $client = new Client([self::A], '', 2.0, $transport, '', Client::FORMAT_JSON);

        self::assertSame([5], $client->sendMany([['group' => 'g', 'data' => 'x', 'except' => 'a']]));
        self::assertSame('{"messages":[{"group":"g","except":"a","data":"x"}]}', $transport->lastRequest()->body());
    }

    public function testAReceiptOfAnotherGroupIsNoReceipt(): void
    {
        $transport = new FakeTransport([self::xml('<message group="other" members="2"/>')]);
        $this->expectException(TransportException::class);
        (new Client([self::A], '', 2.0, $transport, '', Client::FORMAT_XML, 1))->sendToGroup('room:42', 'x');
    }

    /** @return iterable<string, array{callable(Client): mixed, string}> */
    public function badInput(): iterable
    {
        yield 'hash-tag braces' => [static function (Client $c) {
            return $c->sendToGroup('room{42}', 'x');
        }, 'group name "room{42}"'];
        yield 'bad except' => [static function (Client $c) {
            return $c->sendToGroup('g', 'x', 'a b');
        }, 'except "a b"'];
        yield 'empty group' => [static function (Client $c) {
            return $c->join('', ['a']);
        }, 'group name is empty'];
        yield 'bad member' => [static function (Client $c) {
            return $c->join('g', ['a', 'b/c']);
        }, 'clients[1]: client id "b/c"'];
        yield 'no members' => [static function (Client $c) {
            return $c->leave('g', []);
        }, 'no clients'];
        yield 'limit' => [static function (Client $c) {
            return $c->members('g', null, 1001);
        }, 'limit 1001'];
        yield 'after' => [static function (Client $c) {
            return $c->groupsOf('alice', 'a}b');
        }, 'after (a group name)'];
        yield 'array with to and group' => [static function (Client $c) {
            return $c->sendMany([['to' => 'a', 'group' => 'g', 'data' => 1]]);
        }, 'messages[0]'];
    }

    /**
     * @dataProvider badInput
     */
    public function testBadInputIsRefusedBeforeSending(callable $call, string $mention): void
    {
        $transport = new FakeTransport();
        try {
            $call(new Client([self::A], '', 2.0, $transport));
            self::fail('no exception');
        } catch (InvalidArgumentException $e) {
            self::assertStringContainsString($mention, $e->getMessage());
        }
        self::assertCount(0, $transport->requests());
    }

    public function testJoinAndLeaveInRequestsOfAThousand(): void
    {
        $bodies = [];
        $transport = new FakeTransport([static function (Request $r) use (&$bodies): Response {
            $clients = json_decode($r->body(), true)['clients'];
            $bodies[] = [$r->method(), $r->url(), count($clients), $r->header('Authorization')];

            return self::json($r->method() === 'POST'
                ? ['group' => 'room:42', 'added' => count($clients), 'members' => 9]
                : ['group' => 'room:42', 'removed' => 1, 'members' => 9]);
        }]);
        $client = new Client([self::A], 'pub', 2.0, $transport, '', Client::FORMAT_XML, null, 1.0, 'admin');
        $ids = [];
        for ($i = 0; $i < 2500; $i++) {
            $ids[] = 'u' . $i;
        }
        $ids[] = 'u0'; // twice: once

        self::assertSame(2500, $client->join('room:42', $ids));
        self::assertSame(1, $client->leave('room:42', ['u1']));

        $url = self::A . '/groups/room%3A42/members';
        self::assertSame([
            ['POST', $url, 1000, 'Bearer pub'],
            ['POST', $url, 1000, 'Bearer pub'],
            ['POST', $url, 500, 'Bearer pub'],
            ['DELETE', $url, 1, 'Bearer pub'],
        ], $bodies, 'memberships are behind the publish secret, not the admin one');
    }

    public function testPages(): void
    {
        $transport = new FakeTransport([
            self::json(['group' => 'room:42', 'members' => ['alice', 'bob'], 'total' => 3, 'next' => 'bob']),
            self::json(['member' => 'alice', 'groups' => ['room:42'], 'total' => 1, 'next' => null]),
        ]);
        $client = new Client([self::A], '', 2.0, $transport);

        $page = $client->members('room:42', 'aaron', 2);
        self::assertSame(['alice', 'bob'], $page->names());
        self::assertSame(3, $page->total());
        self::assertSame('bob', $page->next());
        self::assertSame(self::A . '/groups/room%3A42/members?limit=2&after=aaron', $transport->requests()[0]->url());

        self::assertNull($page->online());

        $transport2 = new FakeTransport([self::json(['group' => 'g', 'members' => ['a', 'b'], 'total' => 2, 'next' => null, 'online' => ['b']])]);
        $page2 = (new Client([self::A], '', 2.0, $transport2))->members('g', null, 100, true);
        self::assertSame(['b'], $page2->online());
        self::assertSame(self::A . '/groups/g/members?limit=100&online=true', $transport2->lastRequest()->url());

        $page = $client->groupsOf('alice');
        self::assertSame(['room:42'], $page->names());
        self::assertNull($page->next());
        self::assertSame(self::A . '/groups?member=alice&limit=100', $transport->requests()[1]->url());
    }

    public function testGroupMessages(): void
    {
        $m = Message::toGroup('room:42', 'hi', 'alice');
        self::assertTrue($m->isGroup());
        self::assertSame('', $m->to());
        self::assertSame(['room:42', 'alice', Message::TEXT, 'hi'], [$m->group(), $m->except(), $m->type(), $m->payload()]);
        self::assertSame('"s"', Message::groupJson('g', 's')->payload());
        self::assertFalse(Message::of('a', 'x')->isGroup());
        self::assertSame(['{"messages":[{"group":"g","data":null}]}'], [(new JsonFormat())->encode([Message::toGroup('g', null)])]);
    }
}
