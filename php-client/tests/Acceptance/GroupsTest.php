<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance;

use Cometbox\Client;
use Cometbox\Tests\Acceptance\Support\Http;
use Cometbox\Tests\Acceptance\Support\Node;
use Cometbox\Tests\Acceptance\Support\RedisServer;
use Cometbox\Token;
use PHPUnit\Framework\TestCase;

/**
 * Groups through the PHP client against a real node: joining and leaving,
 * group messages in both formats reaching each member's own poll with
 * the group named, pages of members and of a client's groups.
 */
final class GroupsTest extends TestCase
{
    private static ?RedisServer $redis = null;

    private static ?Node $node = null;

    public static function setUpBeforeClass(): void
    {
        self::$redis = RedisServer::start();
        self::$node = Node::start('groups', self::$redis);
    }

    public static function tearDownAfterClass(): void
    {
        foreach ([self::$node, self::$redis] as $process) {
            if ($process !== null) {
                $process->stop();
            }
        }
        self::$node = self::$redis = null;
    }

    private static function client(string $format): Client
    {
        return new Client([self::$node->url()], Node::PUBLISH_SECRET, 5.0, null, Node::TOKEN_SECRET, $format);
    }

    /** @return array<int, object> the messages queued for $client */
    private static function poll(string $client): array
    {
        $answer = Http::poll(self::$node->url(), $client, '', Token::mint(Node::TOKEN_SECRET, $client, time() + 60));
        self::assertSame(200, $answer->status(), $answer->body());
        $messages = $answer->json();
        self::assertIsArray($messages);

        return $messages;
    }

    /** @return iterable<string, array{string}> */
    public function formats(): iterable
    {
        yield 'xml' => [Client::FORMAT_XML];
        yield 'json' => [Client::FORMAT_JSON];
    }

    /**
     * @dataProvider formats
     */
    public function testGroupMessagesReachEachMember(string $format): void
    {
        $c = self::client($format);
        $room = 'room:' . $format;
        $alice = 'alice-' . $format;
        $bob = 'bob-' . $format;
        $carol = 'carol-' . $format;

        self::assertSame(3, $c->join($room, [$alice, $bob, $carol, $bob]));
        self::assertSame(0, $c->join($room, [$bob]));
        self::assertSame(2, $c->sendToGroup($room, 'Hi & <all>', $alice));
        self::assertSame([1, 3, 0], $c->batch()->add($alice, ['direct' => true])->addToGroup($room, ['n' => 2])
            ->addToGroup('nobody-' . $format, 'x')->send());

        $bobs = self::poll($bob);
        self::assertCount(2, $bobs);
        self::assertSame([1, $room, 'Hi & <all>'], [$bobs[0]->id, $bobs[0]->group, $bobs[0]->data]);
        self::assertSame(2, $bobs[1]->data->n);
        $alices = self::poll($alice);
        self::assertSame([1, 2], [$alices[0]->id, $alices[1]->id]);
        self::assertFalse(isset($alices[0]->group), 'a direct message names no group');
        self::assertSame($room, $alices[1]->group);

        self::assertSame(1, $c->leave($room, [$carol, 'zed']));
        self::assertSame(2, $c->sendToGroup($room, 'after'));
        self::assertCount(2, self::poll($carol), 'carol left before the last message');

        $page = $c->members($room);
        self::assertSame([$alice, $bob], $page->names());
        self::assertSame(2, $page->total());
        self::assertNull($page->next());
        self::assertSame([$room], $c->groupsOf($bob)->names());
    }

    public function testManyMembersInPages(): void
    {
        $c = self::client(Client::FORMAT_XML);
        $ids = [];
        for ($i = 0; $i < 2500; $i++) {
            $ids[] = sprintf('m%04d', $i);
        }
        self::assertSame(2500, $c->join('big', $ids));
        self::assertSame(2499, $c->sendToGroup('big', 'hello', 'm0000'));

        $seen = [];
        $after = null;
        do {
            $page = $c->members('big', $after, 1000);
            $seen = array_merge($seen, $page->names());
            $after = $page->next();
        } while ($after !== null);
        self::assertSame($ids, $seen);
        self::assertSame('hello', self::poll('m2499')[0]->data);
    }
}
