<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance;

use Cometbox\Client;
use Cometbox\Exception\ApiException;
use Cometbox\Tests\Acceptance\Support\Http;
use Cometbox\Tests\Acceptance\Support\Node;
use Cometbox\Tests\Acceptance\Support\Process;
use Cometbox\Tests\Acceptance\Support\RedisServer;
use Cometbox\Tests\Acceptance\Support\Tools;
use Cometbox\Token;
use Cometbox\Webhook\ClientOffline;
use Cometbox\Webhook\ClientOnline;
use PHPUnit\Framework\TestCase;

/**
 * The server API through the PHP client against a real node, and the
 * node's webhooks checked by Webhook::verify in a PHP endpoint served by
 * `php -S`.
 */
final class ServerApiTest extends TestCase
{
    private const ADMIN_SECRET = 'admin-s3cret';
    private const WEBHOOK_SECRET = 'whsec-s3cret';

    private static ?RedisServer $redis = null;

    private static ?Node $node = null;

    private static ?Process $receiver = null;

    private static string $log = '';

    private static ?Client $client = null;

    public static function setUpBeforeClass(): void
    {
        self::$log = Tools::tempDir() . '/webhooks.jsonl';
        touch(self::$log);
        $port = Tools::freePort();
        self::$receiver = new Process('webhook-receiver', [PHP_BINARY, '-S', '127.0.0.1:' . $port, __DIR__ . '/scripts/webhook-receiver.php'], Tools::env([], [
            'WEBHOOK_LOG' => self::$log,
            'WEBHOOK_SECRET' => self::WEBHOOK_SECRET,
        ]));
        self::waitForPort($port);
        self::$redis = RedisServer::start();
        self::$node = Node::start('server-api', self::$redis, [
            '-admin-secret', self::ADMIN_SECRET,
            '-presence-linger', '1s',
            '-poll-timeout', '20s',
            '-webhook-url', 'http://127.0.0.1:' . $port . '/hooks',
            '-webhook-secret', self::WEBHOOK_SECRET,
        ]);
        self::$client = new Client([self::$node->url()], Node::PUBLISH_SECRET, 5.0, null, Node::TOKEN_SECRET, Client::FORMAT_XML, null, 1.0, self::ADMIN_SECRET);
    }

    public static function tearDownAfterClass(): void
    {
        foreach ([self::$node, self::$redis, self::$receiver] as $process) {
            if ($process !== null) {
                $process->stop();
            }
        }
        self::$node = self::$redis = self::$receiver = self::$client = null;
    }

    public function testPresenceAndTheWebhooksOfAPageComingAndGoing(): void
    {
        $client = 'page-' . bin2hex(random_bytes(3));
        self::assertFalse(self::$client->presence([$client])[$client]->isOnline());

        $poll = $this->holdPoll($client, self::$client->token($client, 60));
        $this->waitFor('online', function () use ($client): bool {
            return self::$client->presence([$client])[$client]->isOnline();
        });
        $info = self::$client->inspect($client);
        self::assertNotNull($info->presence());
        self::assertTrue($info->presence()->isOnline());
        self::assertEqualsWithDelta(time() * 1000, $info->presence()->since(), 10000);

        fclose($poll); // the page leaves
        $this->waitFor('offline', function () use ($client): bool {
            return !self::$client->presence([$client])[$client]->isOnline();
        });
        self::assertNotNull(self::$client->presence([$client])[$client]->lastSeen());

        $this->waitFor('both webhooks', function () use ($client): bool {
            return count($this->webhookEvents($client)) === 2;
        });
        $events = $this->webhookEvents($client);
        self::assertSame([ClientOnline::class, ClientOffline::class], array_column($events, 'class'));
        self::assertNotSame($events[0]['id'], $events[1]['id']);
        self::assertStringNotContainsString('refused', (string) file_get_contents(self::$log), 'every webhook verified');
    }

    public function testInspectAndDeleteQueue(): void
    {
        $client = 'queue-' . bin2hex(random_bytes(3));
        self::$client->sendMany([['to' => $client, 'data' => 'one'], ['to' => $client, 'data' => 'two']]);

        $info = self::$client->inspect($client);
        self::assertSame(2, $info->length());
        self::assertSame(1, $info->firstId());
        self::assertSame(2, $info->lastId());
        self::assertMatchesRegularExpression('/^[a-z0-9]{8}$/', $info->epoch());

        self::assertTrue(self::$client->deleteQueue($client));
        self::assertFalse(self::$client->deleteQueue($client));
        self::assertSame(0, self::$client->inspect($client)->length());

        // The page's next poll, with its old cursor, gets the reset signal.
        $answer = Http::poll(self::$node->url(), $client, $info->epoch() . ':2', self::$client->token($client, 60));
        self::assertSame(200, $answer->status(), $answer->body());
        self::assertSame('1', $answer->header('Cometbox-Reset'));
    }

    public function testDisconnectEndsTheHeldPollAndRefusesOlderTokens(): void
    {
        $client = 'banned-' . bin2hex(random_bytes(3));
        $old = self::$client->token($client, 60);
        $poll = $this->holdPoll($client, $old);
        usleep(300000);

        $until = self::$client->disconnect($client, true, 60);

        self::assertNotNull($until);
        self::assertEqualsWithDelta(time() + 60, $until, 5);
        stream_set_timeout($poll, 5);
        $answer = (string) stream_get_contents($poll);
        fclose($poll);
        self::assertStringStartsWith('HTTP/1.1 200', $answer);
        self::assertStringEndsWith("\r\n\r\n[]", $answer);

        $again = Http::poll(self::$node->url(), $client, '0', $old);
        self::assertSame(403, $again->status());
        self::assertStringContainsString('token_revoked', $again->body());
        $fresh = Token::mint(Node::TOKEN_SECRET, $client, time() + 120);
        self::$client->send($client, 'welcome back');
        self::assertSame(200, Http::poll(self::$node->url(), $client, '0', $fresh)->status());
    }

    public function testAWrongAdminSecretIsRefused(): void
    {
        $wrong = new Client([self::$node->url()], Node::PUBLISH_SECRET, 2.0);
        try {
            $wrong->presence(['alice']);
            self::fail('the publish secret opened the server API of a node with an admin secret');
        } catch (ApiException $e) {
            self::assertSame(401, $e->getStatus());
            self::assertSame('unauthorized', $e->getErrorCode());
        }
    }

    /**
     * Sends a poll and leaves it held: the socket, to read the answer
     * from or close (the page leaving).
     *
     * @return resource
     */
    private function holdPoll(string $client, string $token)
    {
        $url = parse_url(self::$node->url());
        $socket = stream_socket_client('tcp://' . $url['host'] . ':' . $url['port'], $errno, $errstr, 5);
        self::assertIsResource($socket, $errstr);
        fwrite($socket, sprintf(
            "GET /poll?client=%s&token=%s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
            rawurlencode($client),
            rawurlencode($token),
            $url['host']
        ));

        return $socket;
    }

    /** @return list<array{class: string, id: string, client: ?string}> */
    private function webhookEvents(string $client): array
    {
        $out = [];
        foreach (file(self::$log, FILE_IGNORE_NEW_LINES | FILE_SKIP_EMPTY_LINES) ?: [] as $line) {
            foreach (json_decode($line, true)['events'] ?? [] as $event) {
                if ($event['client'] === $client) {
                    $out[$event['id']] = $event; // duplicates by id
                }
            }
        }

        return array_values($out);
    }

    private function waitFor(string $what, callable $cond): void
    {
        $deadline = microtime(true) + 10;
        while (!$cond()) {
            if (microtime(true) > $deadline) {
                self::fail('not ' . $what . " within 10s; node log:\n" . self::$node->log());
            }
            usleep(50000);
        }
    }

    private static function waitForPort(int $port): void
    {
        $deadline = microtime(true) + 10;
        while (microtime(true) < $deadline && self::$receiver->isRunning()) {
            $socket = @fsockopen('127.0.0.1', $port, $errno, $errstr, 0.2);
            if ($socket !== false) {
                fclose($socket);

                return;
            }
            usleep(10000);
        }
        throw new \RuntimeException("php -S did not listen within 10s:\n" . self::$receiver->output());
    }
}
