<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance;

use Cometbox\Tests\Acceptance\Support\Http;
use Cometbox\Tests\Acceptance\Support\Node;
use Cometbox\Tests\Acceptance\Support\Process;
use Cometbox\Tests\Acceptance\Support\RedisServer;
use Cometbox\Tests\Acceptance\Support\Tools;
use Cometbox\Token;
use PHPUnit\Framework\TestCase;

/**
 * examples/chat, served by `php -S` as README.md tells, next to a real
 * node: the page carries a working token and the cometbox.js tag, and the
 * form's post travels PHP -> node -> poll.
 */
final class ExampleAppTest extends TestCase
{
    private static ?RedisServer $redis = null;

    private static ?Node $node = null;

    private static ?Process $server = null;

    private static string $app = '';

    public static function setUpBeforeClass(): void
    {
        self::$redis = RedisServer::start();
        self::$node = Node::start('example', self::$redis);
        $port = Tools::freePort();
        self::$server = new Process('php-S', [PHP_BINARY, '-S', '127.0.0.1:' . $port, '-t', dirname(__DIR__, 2) . '/examples/chat'], Tools::env([], [
            'COMETBOX_NODE' => self::$node->url(),
            'COMETBOX_PUBLISH_SECRET' => Node::PUBLISH_SECRET,
            'COMETBOX_TOKEN_SECRET' => Node::TOKEN_SECRET,
        ]));
        self::$app = 'http://127.0.0.1:' . $port;
        self::waitForPort($port);
    }

    public static function tearDownAfterClass(): void
    {
        foreach ([self::$server, self::$node, self::$redis] as $process) {
            if ($process !== null) {
                $process->stop();
            }
        }
        self::$server = self::$node = self::$redis = null;
    }

    public function testThePageCarriesAWorkingTokenAndTheScriptTag(): void
    {
        $page = Http::get(self::$app . '/index.php?as=carol');

        self::assertSame(200, $page->status(), $page->body());
        self::assertStringContainsString('<script src="' . self::$node->url() . '/cometbox.js"></script>', $page->body());
        self::assertStringContainsString('new Cometbox({', $page->body());
        self::assertStringContainsString('cb.start();', $page->body());
        self::assertSame(1, preg_match('/client: "carol",\s*token: "(\d+)\.([A-Za-z0-9_-]{43})"/', $page->body(), $m), $page->body());

        $exp = (int) $m[1];
        self::assertEqualsWithDelta(time() + 3600, $exp, 5, 'an hour to live');
        self::assertSame(Token::mint(Node::TOKEN_SECRET, 'carol', $exp), $m[1] . '.' . $m[2], 'the token verifies');

        // And the node takes it: a message for carol, then her poll.
        Http::request('POST', self::$app . '/send.php', ['Content-Type: application/x-www-form-urlencoded'], http_build_query(['from' => 'dave', 'to' => 'carol', 'text' => 'hi']));
        $poll = Http::poll(self::$node->url(), 'carol', '0', $m[1] . '.' . $m[2]);
        self::assertSame(200, $poll->status(), $poll->body());
    }

    public function testTheFormTravelsFromPhpToTheNodeToAPoll(): void
    {
        $from = 'alice-' . bin2hex(random_bytes(3));
        $to = 'bob-' . bin2hex(random_bytes(3));
        $text = "Hello Bob \u{1F44B} <b>& ]]>";

        $post = Http::request('POST', self::$app . '/send.php', ['Content-Type: application/x-www-form-urlencoded'], http_build_query(['from' => $from, 'to' => $to, 'text' => $text]));

        self::assertSame(303, $post->status(), $post->body());
        self::assertSame('index.php?' . http_build_query(['as' => $from, 'to' => $to]), $post->header('Location'));
        foreach ([$to, $from] as $client) {
            $message = Http::receive(self::$node->url(), $client, 1)[1];
            self::assertSame($from, $message->from);
            self::assertSame($to, $message->to);
            self::assertSame($text, $message->text);
            self::assertEqualsWithDelta(time(), $message->at, 5);
        }
    }

    public function testTheFormAnswersJsonToFetch(): void
    {
        $post = Http::request('POST', self::$app . '/send.php', ['Content-Type: application/x-www-form-urlencoded', 'Accept: application/json'], http_build_query(['from' => 'erin', 'to' => 'erin', 'text' => 'note to self']));

        self::assertSame(200, $post->status(), $post->body());
        self::assertCount(1, $post->json()->ids, 'one message when writing to oneself');
    }

    public function testBadInputIsRefused(): void
    {
        $post = Http::request('POST', self::$app . '/send.php', ['Content-Type: application/x-www-form-urlencoded', 'Accept: application/json'], http_build_query(['from' => 'alice', 'to' => 'not valid', 'text' => 'x']));
        self::assertSame(400, $post->status());
        self::assertStringContainsString('client id "not valid"', $post->json()->error);

        self::assertSame(400, Http::get(self::$app . '/index.php?as=' . rawurlencode('<script>'))->status());
        self::assertSame(405, Http::get(self::$app . '/send.php')->status());
    }

    private static function waitForPort(int $port): void
    {
        $deadline = microtime(true) + 10;
        while (microtime(true) < $deadline && self::$server->isRunning()) {
            $socket = @fsockopen('127.0.0.1', $port, $errno, $errstr, 0.2);
            if ($socket !== false) {
                fclose($socket);

                return;
            }
            usleep(10000);
        }
        throw new \RuntimeException("php -S did not listen within 10s:\n" . self::$server->output());
    }
}
