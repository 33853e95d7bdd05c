<?php

declare(strict_types=1);

namespace Cometbox\Tests\Acceptance;

use Cometbox\Client;
use Cometbox\Exception\ApiException;
use Cometbox\Exception\TransportException;
use Cometbox\Message;
use Cometbox\Tests\Acceptance\Support\Corpus;
use Cometbox\Tests\Acceptance\Support\Http;
use Cometbox\Tests\Acceptance\Support\Node;
use Cometbox\Tests\Acceptance\Support\RecordingTransport;
use Cometbox\Tests\Acceptance\Support\RedisServer;
use Cometbox\Tests\Acceptance\Support\Tools;
use Cometbox\Transport\CurlTransport;
use Cometbox\Transport\Transports;
use PHPUnit\Framework\TestCase;

/**
 * The client against real nodes on a real Redis, through each of the three
 * transports (and both body formats where the format matters): what is
 * published is exactly what a browser's poll receives, failover, retries
 * without duplicates, and the typed exceptions.
 */
final class PublishTest extends TestCase
{
    private static ?RedisServer $redis = null;

    /** A Redis that is stopped once its node is ready: that node answers 503. */
    private static ?RedisServer $doomedRedis = null;

    private static ?Node $n1 = null;

    private static ?Node $n2 = null;

    /** A node with -max-message 1KiB and -max-body 64KiB. */
    private static ?Node $small = null;

    /** A node whose Redis is gone. */
    private static ?Node $broken = null;

    /** A URL nobody listens on. */
    private static string $down = '';

    /** @var resource|null a listening socket that never answers */
    private static $hangingSocket;

    /** The URL of $hangingSocket. */
    private static string $hanging = '';

    public static function setUpBeforeClass(): void
    {
        self::$redis = RedisServer::start();
        self::$n1 = Node::start('n1', self::$redis);
        self::$n2 = Node::start('n2', self::$redis);
        self::$small = Node::start('small', self::$redis, ['-max-message', '1KiB', '-max-body', '64KiB']);
        self::$doomedRedis = RedisServer::start();
        self::$broken = Node::start('broken', self::$doomedRedis);
        self::$doomedRedis->stop();
        self::$down = 'http://127.0.0.1:' . Tools::freePort();
        $socket = stream_socket_server('tcp://127.0.0.1:0');
        self::assertIsResource($socket);
        self::$hangingSocket = $socket;
        self::$hanging = 'http://' . stream_socket_get_name($socket, false);
    }

    public static function tearDownAfterClass(): void
    {
        foreach ([self::$n1, self::$n2, self::$small, self::$broken, self::$redis, self::$doomedRedis] as $process) {
            if ($process !== null) {
                $process->stop();
            }
        }
        if (self::$hangingSocket !== null) {
            fclose(self::$hangingSocket);
            self::$hangingSocket = null;
        }
        self::$n1 = self::$n2 = self::$small = self::$broken = null;
        self::$redis = self::$doomedRedis = null;
    }

    /**
     * Every built-in transport this PHP runs: all four with the cometbox
     * extension loaded, the three of the class without it.
     *
     * @return iterable<string, array{string}>
     */
    public function transports(): iterable
    {
        foreach (self::runnable() as $name) {
            yield $name => [$name];
        }
    }

    /** @return iterable<string, array{string, string}> */
    public function transportsAndFormats(): iterable
    {
        foreach (self::runnable() as $name) {
            foreach ([Client::FORMAT_XML, Client::FORMAT_JSON] as $format) {
                yield $name . ' ' . $format => [$name, $format];
            }
        }
    }

    /**
     * @dataProvider transportsAndFormats
     */
    public function testTextArrivesExactly(string $transport, string $format): void
    {
        $texts = Corpus::texts();
        if ($format === Client::FORMAT_JSON) {
            $texts += Corpus::controlTexts();
        }
        $client = self::uniqueClient();

        $ids = $this->client($transport, $format)->sendMany(array_map(static function (string $text) use ($client): Message {
            return Message::text($client, $text);
        }, array_values($texts)));

        self::assertSame(range(1, count($texts)), $ids);
        $received = Http::receive(self::$n2->url(), $client, count($texts));
        foreach (array_values($texts) as $i => $text) {
            self::assertSame($text, $received[$i + 1], array_keys($texts)[$i]);
        }
    }

    /**
     * @dataProvider transportsAndFormats
     */
    public function testJsonArrivesExactly(string $transport, string $format): void
    {
        $values = Corpus::jsonValues();
        $client = self::uniqueClient();
        $publisher = $this->client($transport, $format);

        $ids = [];
        foreach ($values as $value) {
            $ids[] = $publisher->send($client, $value);
        }

        self::assertSame(range(1, count($values)), $ids);
        $received = Http::receive(self::$n1->url(), $client, count($values));
        foreach (array_values($values) as $i => $value) {
            $name = array_keys($values)[$i];
            self::assertEquals(json_decode((string) json_encode($value)), $received[$i + 1], $name);
            self::assertSame(Message::json($client, $value)->payload(), json_encode($received[$i + 1], Message::JSON_FLAGS), $name);
        }
    }

    /**
     * @dataProvider transportsAndFormats
     */
    public function testABatchOf1000MessagesToManyClients(string $transport, string $format): void
    {
        $clients = [];
        for ($c = 0; $c < 7; $c++) {
            $clients[] = self::uniqueClient();
        }
        $batch = $this->client($transport, $format)->batch();
        $expected = [];
        for ($i = 0; $i < 1000; $i++) {
            $to = $clients[$i % 7];
            $data = $i % 3 === 0 ? ['n' => $i, 'to' => $to] : sprintf("message %d to %s \u{1F4E8}", $i, $to);
            $batch->add($to, $data);
            $expected[$to][] = $data;
        }

        $ids = $batch->send();

        self::assertCount(1000, $ids);
        $next = [];
        foreach ($ids as $i => $id) {
            $to = $clients[$i % 7];
            $next[$to] = ($next[$to] ?? 0) + 1;
            self::assertSame($next[$to], $id, 'ids are consecutive per client, in batch order');
        }
        foreach ($clients as $to) {
            $received = Http::receive(self::$n2->url(), $to, count($expected[$to]));
            foreach ($expected[$to] as $k => $data) {
                self::assertEquals(is_array($data) ? (object) $data : $data, $received[$k + 1]);
            }
        }
    }

    /**
     * @dataProvider transports
     */
    public function testFailoverWhenTheFirstNodeIsDown(string $transport): void
    {
        $recorder = new RecordingTransport(Transports::named($transport));
        $client = new Client([self::$down, self::$n1->url()], Node::PUBLISH_SECRET, 5.0, $recorder);
        $to = self::uniqueClient();

        // Calls take turns starting at each node, so one of two starts at the dead one.
        self::assertSame([1, 2], [$client->send($to, 'first'), $client->send($to, 'second')]);

        $summary = $recorder->summary();
        $dead = array_keys(array_filter($summary, static function (string $line): bool {
            return strpos($line, self::$down) === 0;
        }));
        self::assertCount(1, $dead, implode("\n", $summary));
        self::assertCount(3, $summary, implode("\n", $summary));
        self::assertSame(self::$down . '/publish -> no answer', $summary[$dead[0]]);
        self::assertSame(self::$n1->url() . '/publish -> 200', $summary[$dead[0] + 1], 'the next node got it at once');
        $exchanges = $recorder->exchanges();
        self::assertSame($exchanges[$dead[0]]['request']->header('Idempotency-Key'), $exchanges[$dead[0] + 1]['request']->header('Idempotency-Key'));
        self::assertSame(['first', 'second'], array_values(Http::receive(self::$n2->url(), $to, 2)));
    }

    /**
     * A node that takes the connection and never answers costs at most half
     * the timeout: the other half is left for the next node.
     *
     * @dataProvider transports
     */
    public function testFailoverWhenANodeHangs(string $transport): void
    {
        $recorder = new RecordingTransport(Transports::named($transport));
        $client = new Client([self::$hanging, self::$n1->url()], Node::PUBLISH_SECRET, 1.0, $recorder);
        $to = self::uniqueClient();

        $start = microtime(true);
        self::assertSame([1, 2], [$client->send($to, 'first'), $client->send($to, 'second')]);
        $took = microtime(true) - $start;

        $summary = $recorder->summary();
        self::assertCount(3, $summary, implode("\n", $summary));
        self::assertContains(self::$hanging . '/publish -> no answer', $summary);
        self::assertGreaterThanOrEqual(0.45, $took, 'the hanging node was given its half');
        self::assertLessThan(0.9, $took, 'and no more');
    }

    /**
     * @dataProvider transports
     */
    public function testFailoverWhenANodeAnswers503(string $transport): void
    {
        $recorder = new RecordingTransport(Transports::named($transport));
        $client = new Client([self::$broken->url(), self::$n2->url()], Node::PUBLISH_SECRET, 5.0, $recorder);
        $to = self::uniqueClient();

        self::assertSame([1, 2], [$client->send($to, 'first'), $client->send($to, 'second')]);

        $summary = $recorder->summary();
        self::assertCount(3, $summary, implode("\n", $summary));
        $i = array_search(self::$broken->url() . '/publish -> 503', $summary, true);
        self::assertIsInt($i, implode("\n", $summary));
        $exchanges = $recorder->exchanges();
        $refusal = $exchanges[$i]['response'];
        self::assertNotNull($refusal);
        self::assertStringContainsString('unavailable', $refusal->body());
        self::assertGreaterThanOrEqual(1, $refusal->retryAfter());
        self::assertSame(self::$n2->url() . '/publish -> 200', $summary[$i + 1]);
        self::assertSame($exchanges[$i]['request']->header('Idempotency-Key'), $exchanges[$i + 1]['request']->header('Idempotency-Key'));
        self::assertSame(['first', 'second'], array_values(Http::receive(self::$n1->url(), $to, 2)));
    }

    /**
     * @dataProvider transports
     */
    public function testWhenEveryNodeAnswers503ATransportExceptionCarriesTheLastAnswer(string $transport): void
    {
        $client = new Client([self::$broken->url()], Node::PUBLISH_SECRET, 1.0, Transports::named($transport));

        $start = microtime(true);
        try {
            $client->send(self::uniqueClient(), 'lost');
            self::fail('no exception');
        } catch (TransportException $e) {
            $previous = $e->getPrevious();
            self::assertInstanceOf(ApiException::class, $previous);
            self::assertSame(503, $previous->getStatus());
            self::assertSame('unavailable', $previous->getErrorCode());
            self::assertSame(self::$broken->url(), $previous->getNode());
            self::assertGreaterThanOrEqual(1, $previous->getRetryAfter());
            self::assertMatchesRegularExpression('/^[0-9a-f]{32}$/', $e->getIdempotencyKey());
            self::assertStringContainsString('every node asked to wait', $e->getMessage());
        }
        self::assertLessThan(1.0, microtime(true) - $start, 'a Retry-After past the timeout is not waited for');
    }

    /**
     * @dataProvider transportsAndFormats
     */
    public function testARetryAfterALostAnswerDoesNotDuplicate(string $transport, string $format): void
    {
        $recorder = (new RecordingTransport(Transports::named($transport)))->loseAnswers(1);
        $client = new Client([self::$n1->url(), self::$n2->url()], Node::PUBLISH_SECRET, 5.0, $recorder, '', $format);
        $to = self::uniqueClient();

        $ids = $client->sendMany([['to' => $to, 'data' => 'one'], ['to' => $to, 'data' => ['two' => 2]], ['to' => $to, 'data' => 'three']]);

        self::assertSame([1, 2, 3], $ids);
        [$lost, $retry] = $recorder->exchanges();
        self::assertNotNull($lost['response']);
        self::assertNotNull($lost['error'], 'the first answer was lost');
        self::assertNull($lost['response']->header('Idempotent-Replayed'));
        self::assertNotNull($retry['response']);
        self::assertSame('true', $retry['response']->header('Idempotent-Replayed'), 'the node replayed the first attempt');
        self::assertSame($lost['request']->header('Idempotency-Key'), $retry['request']->header('Idempotency-Key'));
        self::assertNotSame($lost['request']->url(), $retry['request']->url(), 'the retry went to the other node');

        // Had the retry enqueued the batch again, the sentinel would be id 7.
        self::assertSame(4, $client->send($to, 'sentinel'));
        self::assertEquals(['one', (object) ['two' => 2], 'three', 'sentinel'], array_values(Http::receive(self::$n1->url(), $to, 4)));
    }

    /**
     * @dataProvider transports
     */
    public function testTheSameIdempotencyKeyEnqueuesOnce(string $transport): void
    {
        $recorder = new RecordingTransport(Transports::named($transport));
        $client = new Client([self::$n1->url(), self::$n2->url()], Node::PUBLISH_SECRET, 2.0, $recorder);
        $to = self::uniqueClient();
        $key = 'job-' . bin2hex(random_bytes(8));

        $first = $client->batch()->idempotencyKey($key)->add($to, 'a')->add($to, 'b')->send();
        $again = $client->batch()->idempotencyKey($key)->add($to, 'a')->add($to, 'b')->send();

        self::assertSame([1, 2], $first);
        self::assertSame($first, $again);
        [$one, $two] = $recorder->exchanges();
        self::assertNull($one['response']->header('Idempotent-Replayed'));
        self::assertSame('true', $two['response']->header('Idempotent-Replayed'));
        self::assertSame(3, $client->send($to, 'c'));
        self::assertSame(['a', 'b', 'c'], array_values(Http::receive(self::$n2->url(), $to, 3)));
    }

    /**
     * @dataProvider transportsAndFormats
     */
    public function testABadClientIdIs400AndNotRetried(string $transport, string $format): void
    {
        $recorder = (new RecordingTransport(Transports::named($transport)))->rewriteBodies(static function (string $body): string {
            return str_replace('not-so-bad', 'not so bad', $body); // past the client's own check
        });
        $client = new Client([self::$n1->url(), self::$n2->url()], Node::PUBLISH_SECRET, 2.0, $recorder, '', $format);

        try {
            $client->sendMany([['to' => 'fine', 'data' => 'x'], ['to' => 'not-so-bad', 'data' => 'y']]);
            self::fail('no exception');
        } catch (ApiException $e) {
            self::assertSame(400, $e->getStatus());
            self::assertSame('invalid_client', $e->getErrorCode());
            self::assertStringContainsString('client "not so bad"', $e->getExplanation());
            self::assertStringContainsString($format === Client::FORMAT_XML ? 'message 2 on line' : 'messages[1].to', $e->getExplanation());
        }
        self::assertCount(1, $recorder->exchanges(), 'a 4xx is never retried');
    }

    /**
     * @dataProvider transportsAndFormats
     */
    public function testAWrongSecretIs401(string $transport, string $format): void
    {
        $recorder = new RecordingTransport(Transports::named($transport));
        $client = new Client([self::$n1->url(), self::$n2->url()], 'wrong', 2.0, $recorder, '', $format);

        try {
            $client->send(self::uniqueClient(), 'x');
            self::fail('no exception');
        } catch (ApiException $e) {
            self::assertSame(401, $e->getStatus());
            self::assertSame('unauthorized', $e->getErrorCode());
            self::assertStringContainsString('Authorization: Bearer', $e->getExplanation());
        }
        self::assertCount(1, $recorder->exchanges());
    }

    /**
     * @dataProvider transportsAndFormats
     */
    public function testAMessageOverTheNodesLimitIs413(string $transport, string $format): void
    {
        $client = new Client([self::$small->url()], Node::PUBLISH_SECRET, 2.0, Transports::named($transport), '', $format);
        $to = self::uniqueClient();

        self::assertSame(1, $client->send($to, str_repeat('x', 1000)), 'under 1 KiB passes');
        try {
            $client->send($to, str_repeat('x', 2048));
            self::fail('no exception');
        } catch (ApiException $e) {
            self::assertSame(413, $e->getStatus());
            self::assertSame('message_too_large', $e->getErrorCode());
            self::assertSame(self::$small->url(), $e->getNode());
        }
    }

    /**
     * A body far over -max-body: the node answers 413 and hangs up without
     * reading the rest, and the transports still report its answer.
     *
     * @dataProvider transportsAndFormats
     */
    public function testABodyOverTheNodesLimitIs413(string $transport, string $format): void
    {
        $client = new Client([self::$small->url()], Node::PUBLISH_SECRET, 5.0, Transports::named($transport), '', $format);
        $batch = $client->batch();
        for ($i = 0; $i < 1000; $i++) {
            $batch->add(self::uniqueClient(), str_repeat('x', 1000)); // 1 MB in all, each message under 1 KiB
        }

        try {
            $batch->send();
            self::fail('no exception');
        } catch (ApiException $e) {
            self::assertSame(413, $e->getStatus());
            self::assertSame('body_too_large', $e->getErrorCode());
            self::assertStringContainsString('65536 bytes', $e->getExplanation());
        }
    }

    public function testCurlKeepsTheConnectionAlive(): void
    {
        $curl = new CurlTransport();
        $client = new Client([self::$n1->url()], Node::PUBLISH_SECRET, 2.0, $curl);
        for ($i = 0; $i < 5; $i++) {
            $client->send(self::uniqueClient(), 'x');
        }

        self::assertSame(1, $curl->connectionsOpened());
    }

    /**
     * The fallbacks for bare hosts, for real: `php -n` (no curl, no
     * XMLWriter), the stream and socket transports, the hand-written XML.
     *
     * @dataProvider bareTransports
     */
    public function testABarePhpPublishes(string $transport): void
    {
        $to = self::uniqueClient();
        $texts = array_values(Corpus::texts());
        $process = proc_open(
            [PHP_BINARY, '-n', '-d', 'allow_url_fopen=' . ($transport === 'stream' ? '1' : '0'), __DIR__ . '/scripts/bare-publish.php', self::$n1->url(), Node::PUBLISH_SECRET, $to],
            [1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
            $pipes
        );
        self::assertIsResource($process);
        $out = (string) stream_get_contents($pipes[1]);
        $err = (string) stream_get_contents($pipes[2]);
        fclose($pipes[1]);
        fclose($pipes[2]);
        self::assertSame(0, proc_close($process), $out . $err);

        self::assertSame(['transport' => 'Cometbox\\Transport\\' . ucfirst($transport) . 'Transport', 'xmlwriter' => false, 'ids' => range(1, count($texts) + 1)], json_decode($out, true));
        $received = Http::receive(self::$n2->url(), $to, count($texts) + 1);
        self::assertSame(array_merge($texts, [null]), array_values(array_map(static function ($data) {
            return is_object($data) ? null : $data;
        }, $received)));
        self::assertEquals((object) ['json' => (object) ['nested' => "\u{1F600}"]], $received[count($texts) + 1]);
    }

    /** @return iterable<string, array{string}> */
    public function bareTransports(): iterable
    {
        yield 'stream' => ['stream'];
        yield 'socket' => ['socket'];
    }

    private function client(string $transport, string $format): Client
    {
        return new Client([self::$n1->url(), self::$n2->url()], Node::PUBLISH_SECRET, 5.0, Transports::named($transport), Node::TOKEN_SECRET, $format);
    }

    /** @return string[] */
    private static function runnable(): array
    {
        return array_values(array_filter(Transports::NAMES, static function (string $name): bool {
            return $name !== 'native' || Transports::isAvailable('native');
        }));
    }

    private static function uniqueClient(): string
    {
        return 'user:' . bin2hex(random_bytes(6)) . '@test';
    }
}
