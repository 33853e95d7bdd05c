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
 * Tokens minted by PHP open real polls on a node with a token secret, and
 * only for their own client.
 */
final class PollTokenTest extends TestCase
{
    private static ?RedisServer $redis = null;

    private static ?Node $node = null;

    private static ?Client $client = null;

    public static function setUpBeforeClass(): void
    {
        self::$redis = RedisServer::start();
        self::$node = Node::start('tokens', self::$redis);
        self::$client = new Client([self::$node->url()], Node::PUBLISH_SECRET, 2.0, null, Node::TOKEN_SECRET);
    }

    public static function tearDownAfterClass(): void
    {
        if (self::$node !== null) {
            self::$node->stop();
        }
        if (self::$redis !== null) {
            self::$redis->stop();
        }
        self::$node = self::$redis = self::$client = null;
    }

    public function testATokenMintedByPhpOpensThePoll(): void
    {
        $to = $this->clientWithAMessage();

        $answer = Http::poll(self::$node->url(), $to, '0', self::$client->token($to, 60));

        self::assertSame(200, $answer->status(), $answer->body());
        self::assertEquals([(object) ['id' => 1, 'data' => 'hello']], $answer->json());
    }

    public function testTheStaticMintOpensThePollToo(): void
    {
        $to = $this->clientWithAMessage();

        $answer = Http::poll(self::$node->url(), $to, '0', Token::mint(Node::TOKEN_SECRET, $to, time() + 60));

        self::assertSame(200, $answer->status(), $answer->body());
    }

    public function testATokenWorksAsABearerHeaderToo(): void
    {
        $to = $this->clientWithAMessage();

        $answer = Http::get(self::$node->url() . '/poll?client=' . rawurlencode($to) . '&since=0', ['Authorization: Bearer ' . self::$client->token($to, 60)]);

        self::assertSame(200, $answer->status(), $answer->body());
    }

    /** @return iterable<string, array{callable(string): string, string}> */
    public function wrongTokens(): iterable
    {
        yield 'another client\'s token' => [static function (string $to): string {
            return Token::mint(Node::TOKEN_SECRET, 'someone-else', time() + 60);
        }, 'token_invalid'];
        yield 'another secret' => [static function (string $to): string {
            return Token::mint('not-the-secret', $to, time() + 60);
        }, 'token_invalid'];
        yield 'a tampered expiry' => [static function (string $to): string {
            [$exp, $sig] = explode('.', Token::mint(Node::TOKEN_SECRET, $to, time() + 60));

            return ($exp + 3600) . '.' . $sig;
        }, 'token_invalid'];
        yield 'expired beyond the leeway' => [static function (string $to): string {
            return Token::mint(Node::TOKEN_SECRET, $to, time() - 120);
        }, 'token_expired'];
        yield 'garbage' => [static function (string $to): string {
            return 'not-a-token';
        }, 'token_invalid'];
    }

    /**
     * @dataProvider wrongTokens
     *
     * @param callable(string): string $token
     */
    public function testAWrongTokenIs403(callable $token, string $code): void
    {
        $to = $this->clientWithAMessage();

        $answer = Http::poll(self::$node->url(), $to, '0', $token($to));

        self::assertSame(403, $answer->status(), $answer->body());
        self::assertSame($code, $answer->json()->error->code);
    }

    public function testNoTokenIs401(): void
    {
        $answer = Http::poll(self::$node->url(), $this->clientWithAMessage(), '0', null);

        self::assertSame(401, $answer->status(), $answer->body());
        self::assertSame('token_missing', $answer->json()->error->code);
    }

    /** A fresh client with one message queued, so that a poll answers at once. */
    private function clientWithAMessage(): string
    {
        $to = 'tab.' . bin2hex(random_bytes(6));
        self::assertSame(1, self::$client->send($to, 'hello'));

        return $to;
    }
}
