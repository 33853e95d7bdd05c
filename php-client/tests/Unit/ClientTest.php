<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Client;
use Cometbox\Exception\CometboxException;
use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Exception\LogicException;
use Cometbox\Exception\TransportException;
use Cometbox\Message;
use Cometbox\Tests\Fake\FakeTransport;
use Cometbox\Token;
use Cometbox\Transport\Response;
use PHPUnit\Framework\TestCase;

/**
 * What the Client sends for each public method, and what it returns.
 */
final class ClientTest extends TestCase
{
    private const NODE = 'http://node1:8080';

    public function testSendTextBuildsTheRequest(): void
    {
        $transport = FakeTransport::node();
        $client = new Client([self::NODE . '/'], 's3cret', 2.0, $transport);

        $id = $client->send('alice', 'Hello & welcome');

        self::assertSame(1, $id);
        $request = $transport->lastRequest();
        self::assertSame('POST', $request->method());
        self::assertSame(self::NODE . '/publish', $request->url());
        self::assertSame('application/xml; charset=utf-8', $request->header('Content-Type'));
        self::assertSame('application/xml; charset=utf-8', $request->header('Accept'));
        self::assertSame('Bearer s3cret', $request->header('Authorization'));
        self::assertMatchesRegularExpression('/^[0-9a-f]{32}$/', (string) $request->header('Idempotency-Key'));
        self::assertStringStartsWith('cometbox-php/' . Client::VERSION, (string) $request->header('User-Agent'));
        self::assertSame(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<messages><message to=\"alice\">Hello &amp; welcome</message></messages>\n",
            $request->body()
        );
    }

    public function testWithoutASecretNoAuthorizationIsSent(): void
    {
        $transport = FakeTransport::node();
        (new Client([self::NODE], '', 2.0, $transport))->send('alice', 'hi');

        self::assertNull($transport->lastRequest()->header('Authorization'));
    }

    /**
     * @dataProvider jsonPayloads
     *
     * @param mixed $data
     */
    public function testNonStringDataIsSentAsJson($data, string $json): void
    {
        $transport = FakeTransport::node();
        (new Client([self::NODE], '', 2.0, $transport))->send('bob', $data);

        $escaped = strtr($json, ['&' => '&amp;', '<' => '&lt;', '>' => '&gt;', '"' => '&quot;']);
        self::assertStringContainsString('<message to="bob" type="json">' . $escaped . '</message>', $transport->lastRequest()->body());
    }

    /** @return iterable<string, array{mixed, string}> */
    public function jsonPayloads(): iterable
    {
        yield 'assoc array' => [['x' => 1, 'name' => 'Zoë'], '{"x":1,"name":"Zoë"}'];
        yield 'list' => [[1, 'two', null], '[1,"two",null]'];
        yield 'nested' => [['a' => ['b' => ['c' => [true, false]]]], '{"a":{"b":{"c":[true,false]}}}'];
        yield 'stdClass' => [(object) ['url' => 'https://x/y'], '{"url":"https://x/y"}'];
        yield 'empty object' => [new \stdClass(), '{}'];
        yield 'JsonSerializable' => [new class () implements \JsonSerializable {
            /** @return array<string, int> */
            public function jsonSerialize(): array
            {
                return ['score' => 3];
            }
        }, '{"score":3}'];
        yield 'null' => [null, 'null'];
        yield 'int' => [42, '42'];
        yield 'float keeps its fraction' => [1.0, '1.0'];
        yield 'bool' => [false, 'false'];
        yield 'markup in JSON' => [['html' => '<b>&amp;</b>'], '{"html":"<b>&amp;</b>"}'];
    }

    public function testSendManyReturnsTheIdsInOrder(): void
    {
        $transport = FakeTransport::node();
        $client = new Client([self::NODE], '', 2.0, $transport);

        $ids = $client->sendMany([
            ['to' => 'alice', 'data' => 'one'],
            Message::json('bob', ['n' => 1]),
            ['to' => 'alice', 'data' => 'two'],
            Message::text('alice', 'three'),
        ]);

        self::assertSame([1, 1, 2, 3], $ids);
        self::assertCount(1, $transport->requests(), 'one request for the whole batch');
    }

    public function testBatchBuilder(): void
    {
        $transport = FakeTransport::node();
        $client = new Client([self::NODE], '', 2.0, $transport);

        $batch = $client->batch()->add('alice', 'hi')->add('bob', ['x' => 1])->addMessage(Message::text('alice', 'again'));

        self::assertCount(3, $batch);
        self::assertSame([1, 1, 2], $batch->send());
        self::assertSame(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<messages><message to=\"alice\">hi</message>"
            . '<message to="bob" type="json">{&quot;x&quot;:1}</message><message to="alice">again</message></messages>' . "\n",
            $transport->lastRequest()->body()
        );
    }

    public function testAGivenIdempotencyKeyIsSent(): void
    {
        $transport = FakeTransport::node();
        $client = new Client([self::NODE], '', 2.0, $transport);

        $client->batch()->idempotencyKey('job-42:attempt')->add('alice', 'hi')->send();
        self::assertSame('job-42:attempt', $transport->lastRequest()->header('Idempotency-Key'));

        $client->send('alice', 'hi', 'other-key');
        self::assertSame('other-key', $transport->lastRequest()->header('Idempotency-Key'));
    }

    public function testEachCallGetsItsOwnRandomKey(): void
    {
        $transport = FakeTransport::node();
        $client = new Client([self::NODE], '', 2.0, $transport);
        $client->send('alice', 'one');
        $client->send('alice', 'two');

        [$first, $second] = $transport->requests();
        self::assertNotSame($first->header('Idempotency-Key'), $second->header('Idempotency-Key'));
    }

    public function testJsonFormat(): void
    {
        $transport = FakeTransport::node();
        $client = new Client([self::NODE], '', 2.0, $transport, '', Client::FORMAT_JSON);

        $ids = $client->sendMany([['to' => 'alice', 'data' => "tab\there \u{1}"], ['to' => 'bob', 'data' => ['a/b' => 'é']]]);

        self::assertSame([1, 1], $ids);
        $request = $transport->lastRequest();
        self::assertSame('application/json', $request->header('Content-Type'));
        self::assertSame('{"messages":[{"to":"alice","data":"tab\there \u0001"},{"to":"bob","data":{"a/b":"é"}}]}', $request->body());
    }

    /**
     * @dataProvider badInput
     *
     * @param array<mixed> $messages
     */
    public function testBadInputIsRefusedBeforeAnythingIsSent(array $messages, string $error): void
    {
        $transport = FakeTransport::node();
        $client = new Client([self::NODE], '', 2.0, $transport);

        try {
            $client->sendMany($messages);
            self::fail('no exception');
        } catch (InvalidArgumentException $e) {
            self::assertStringContainsString($error, $e->getMessage());
        }
        self::assertSame([], $transport->requests());
    }

    /** @return iterable<string, array{array<mixed>, string}> */
    public function badInput(): iterable
    {
        $ok = ['to' => 'alice', 'data' => 'fine'];
        yield 'no messages' => [[], 'no messages to send'];
        yield 'client with a space' => [[$ok, ['to' => 'a b', 'data' => 'x']], 'messages[1]: client id "a b": want 1 to 128 characters'];
        yield 'empty client' => [[['to' => '', 'data' => 'x']], 'messages[0]: client id is empty'];
        yield 'client too long' => [[['to' => str_repeat('a', 129), 'data' => 'x']], 'messages[0]: client id "aaaa'];
        yield 'client with a newline' => [[['to' => "alice\n", 'data' => 'x']], 'client id "alice\n"'];
        yield 'control character in text' => [[$ok, $ok, ['to' => 'carol', 'data' => "bell \x07!"]], 'messages[2] to "carol": the text holds U+0007 at byte 5'];
        yield 'U+FFFF in text' => [[['to' => 'carol', 'data' => "x\u{FFFF}"]], 'U+FFFF at byte 1'];
        yield 'invalid UTF-8 text' => [[$ok, ['to' => 'bob', 'data' => "caf\xE9!"]], 'messages[1]: message to "bob": text is not valid UTF-8 (byte 0xE9 at offset 3)'];
        yield 'invalid UTF-8 inside JSON' => [[['to' => 'bob', 'data' => ['name' => "\xC3\x28"]]], 'messages[0]: message to "bob": data cannot be encoded as JSON: Malformed UTF-8'];
        yield 'NAN' => [[['to' => 'bob', 'data' => ['x' => NAN]]], 'data cannot be encoded as JSON: Inf and NaN cannot be JSON encoded'];
        yield 'resource' => [[['to' => 'bob', 'data' => STDIN]], 'Type is not supported'];
        yield 'not an array' => [['alice'], 'messages[0]: want a Message, an array with exactly the keys "to" and "data", or one with "group", "data" and perhaps "except", got string'];
        yield 'missing data' => [[['to' => 'alice']], 'got an array with the keys to'];
        yield 'extra key' => [[['to' => 'alice', 'data' => 'x', 'type' => 'json']], 'got an array with the keys to, data, type'];
        yield 'to not a string' => [[['to' => 42, 'data' => 'x']], 'messages[0]: "to" must be a client id string, got integer'];
        yield 'a Message as data' => [[['to' => 'bob', 'data' => Message::text('alice', 'x')]], 'its data is a Message'];
    }

    public function testABadIdempotencyKeyIsRefused(): void
    {
        $transport = FakeTransport::node();
        $client = new Client([self::NODE], '', 2.0, $transport);

        $this->expectException(InvalidArgumentException::class);
        $this->expectExceptionMessage('idempotency key "has space": want 1 to 128 characters');
        try {
            $client->send('alice', 'x', 'has space');
        } finally {
            self::assertSame([], $transport->requests());
        }
    }

    public function testBatchAddNamesTheMessage(): void
    {
        $batch = (new Client([self::NODE], '', 2.0, FakeTransport::node()))->batch()->add('alice', 'x');

        $this->expectException(InvalidArgumentException::class);
        $this->expectExceptionMessage('messages[1]: client id "no/slash"');
        $batch->add('no/slash', 'x');
    }

    public function testAnAnswerThatIsNotAReceiptIsATransportFailure(): void
    {
        $transport = new FakeTransport([new Response(200, ['Content-Type' => 'text/html'], '<html>captive portal</html>')]);
        $client = new Client([self::NODE], '', 2.0, $transport, '', Client::FORMAT_XML, 1);

        try {
            $client->send('alice', 'x');
            self::fail('no exception');
        } catch (TransportException $e) {
            self::assertStringContainsString('answered 200, but not with the receipt of 1 message', $e->getMessage());
            self::assertSame($transport->lastRequest()->header('Idempotency-Key'), $e->getIdempotencyKey());
        }
    }

    public function testReceiptsMustMatchTheBatch(): void
    {
        $wrongClient = new Response(200, [], '<?xml version="1.0"?><queued><message to="mallory" id="1"/></queued>');
        $client = new Client([self::NODE], '', 2.0, new FakeTransport([$wrongClient]), '', Client::FORMAT_XML, 1);

        $this->expectException(TransportException::class);
        $client->send('alice', 'x');
    }

    public function testTokenIsMintedFromTheTokenSecret(): void
    {
        $client = new Client([self::NODE], 'publish', 2.0, FakeTransport::node(), 'tok-secret');

        $before = time();
        $token = $client->token('user:42', 600);
        $after = time();

        [$exp] = explode('.', $token);
        self::assertGreaterThanOrEqual($before + 600, (int) $exp);
        self::assertLessThanOrEqual($after + 600, (int) $exp);
        self::assertSame(Token::mint('tok-secret', 'user:42', (int) $exp), $token);
    }

    public function testTokenWithoutATokenSecret(): void
    {
        $client = new Client([self::NODE], 'publish', 2.0, FakeTransport::node());

        $this->expectException(LogicException::class);
        $this->expectExceptionMessage('no token secret');
        $client->token('alice', 60);
    }

    public function testTokenLifetimeMustBePositive(): void
    {
        $client = new Client([self::NODE], '', 2.0, FakeTransport::node(), 'x');

        $this->expectException(InvalidArgumentException::class);
        $client->token('alice', 0);
    }

    public function testTokenChecksTheClientId(): void
    {
        $client = new Client([self::NODE], '', 2.0, FakeTransport::node(), 'x');

        $this->expectException(InvalidArgumentException::class);
        $client->token('not valid', 60);
    }

    public function testEveryExceptionIsACometboxException(): void
    {
        self::assertInstanceOf(\InvalidArgumentException::class, new InvalidArgumentException());
        self::assertInstanceOf(\LogicException::class, new LogicException());
        self::assertInstanceOf(\RuntimeException::class, new TransportException());
        foreach ([InvalidArgumentException::class, LogicException::class, TransportException::class, \Cometbox\Exception\ApiException::class] as $class) {
            self::assertTrue(is_subclass_of($class, CometboxException::class), $class);
        }
    }
}
