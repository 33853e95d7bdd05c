<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Client;
use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Tests\Fake\FakeTransport;
use Cometbox\Transport\CurlTransport;
use Cometbox\Transport\NativeTransport;
use Cometbox\Transport\SocketTransport;
use Cometbox\Transport\StreamTransport;
use Cometbox\Transport\Transports;
use PHPUnit\Framework\TestCase;

/**
 * The constructor's and fromOptions()'s checks.
 */
final class ConstructionTest extends TestCase
{
    public function testFromOptions(): void
    {
        $transport = FakeTransport::node();
        $client = Client::fromOptions([
            'nodes' => ['http://node1:8080', 'https://node2/cometbox/'],
            'secret' => 'publish',
            'timeout' => 3,
            'transport' => $transport,
            'tokenSecret' => 'tok',
            'format' => 'json',
            'maxAttempts' => 5,
            'connectTimeout' => 0.5,
        ]);

        self::assertSame(['http://node1:8080', 'https://node2/cometbox'], $client->nodes());
        self::assertSame($transport, $client->transport());
        self::assertSame(1, $client->send('alice', 'x'));
        self::assertSame('application/json', $transport->lastRequest()->header('Content-Type'));
        self::assertSame('Bearer publish', $transport->lastRequest()->header('Authorization'));
        self::assertNotSame('', $client->token('alice', 5));
    }

    public function testTheIssueExampleWorks(): void
    {
        $client = Client::fromOptions(['nodes' => ['http://node1:8080', 'http://node2:8080'], 'secret' => '...', 'timeout' => 2.0]);

        self::assertCount(2, $client->nodes());
    }

    /**
     * @dataProvider transportNames
     */
    public function testTransportByName(string $name, string $class): void
    {
        self::assertInstanceOf($class, Client::fromOptions(['nodes' => ['http://n'], 'transport' => $name])->transport());
    }

    /** @return iterable<string, array{string, string}> */
    public function transportNames(): iterable
    {
        yield 'auto picks the best here' => ['auto', self::best()];
        if (NativeTransport::isAvailable()) {
            yield 'native' => ['native', NativeTransport::class];
        }
        yield 'curl' => ['curl', CurlTransport::class];
        yield 'stream' => ['stream', StreamTransport::class];
        yield 'socket' => ['socket', SocketTransport::class];
    }

    /**
     * The extension's transport when it is loaded (the suite runs with and
     * without it), else curl.
     */
    public function testDetectPrefersNativeThenCurl(): void
    {
        self::assertInstanceOf(self::best(), Transports::detect());
        self::assertInstanceOf(self::best(), (new Client(['http://n']))->transport());
    }

    public function testNativeWithoutTheExtensionSaysWhatIsMissing(): void
    {
        if (NativeTransport::isAvailable()) {
            self::assertInstanceOf(NativeTransport::class, Transports::named('native'));

            return;
        }
        $this->expectException(\Cometbox\Exception\LogicException::class);
        $this->expectExceptionMessage('NativeTransport needs the cometbox extension');
        Transports::named('native');
    }

    /**
     * make test-php runs the suite twice and sets COMETBOX_EXPECT_EXT=1 for
     * the run with the extension: that run must really have it.
     */
    public function testTheRunWithTheExtensionHasIt(): void
    {
        self::assertTrue(getenv('COMETBOX_EXPECT_EXT') !== '1' || NativeTransport::isAvailable(), 'COMETBOX_EXPECT_EXT=1, but the cometbox extension is not loaded');
    }

    /** @return class-string */
    private static function best(): string
    {
        return extension_loaded('cometbox') ? NativeTransport::class : CurlTransport::class;
    }

    /** @return iterable<string, array{array<string, mixed>, string}> */
    public function badOptions(): iterable
    {
        $nodes = ['http://n:8080'];
        yield 'unknown key, with a suggestion' => [['nodes' => $nodes, 'token_secret' => 'x'], 'unknown option "token_secret" (did you mean "tokenSecret"?); the options are: nodes, secret, timeout, transport, tokenSecret, format, maxAttempts, connectTimeout'];
        yield 'misspelt key' => [['nodes' => $nodes, 'timout' => 2.0], '(did you mean "timeout"?)'];
        yield 'unknown key, nothing close' => [['nodes' => $nodes, 'verbose' => true], 'unknown option "verbose"; the options are'];
        yield 'numeric key' => [['http://n:8080'], 'unknown option "0"'];
        yield 'missing nodes' => [['secret' => 'x'], 'option "nodes" is required'];
        yield 'nodes as a string' => [['nodes' => 'http://n:8080'], 'option "nodes": want a list of node URLs, got string'];
        yield 'timeout as a string' => [['nodes' => $nodes, 'timeout' => '2'], 'option "timeout": want a number of seconds, got string'];
        yield 'secret as null' => [['nodes' => $nodes, 'secret' => null], 'option "secret": want a string, got NULL'];
        yield 'maxAttempts as a float' => [['nodes' => $nodes, 'maxAttempts' => 2.0], 'option "maxAttempts": want an int or null, got double'];
        yield 'transport as an object' => [['nodes' => $nodes, 'transport' => new \stdClass()], 'option "transport": want a Transport or one of "auto", "native", "curl", "stream", "socket", got stdClass'];
        yield 'unknown transport' => [['nodes' => $nodes, 'transport' => 'guzzle'], 'unknown transport "guzzle": want auto, native, curl, stream, socket'];
        yield 'unknown format' => [['nodes' => $nodes, 'format' => 'yaml'], 'format "yaml": want "xml" or "json"'];
    }

    /**
     * @dataProvider badOptions
     *
     * @param array<string, mixed> $options
     */
    public function testBadOptions(array $options, string $error): void
    {
        $this->expectException(InvalidArgumentException::class);
        $this->expectExceptionMessage($error);
        Client::fromOptions($options);
    }

    /** @return iterable<string, array{string, string}> */
    public function goodNodes(): iterable
    {
        yield 'host and port' => ['http://node1:8080', 'http://node1:8080'];
        yield 'https without port' => ['https://push.example.com', 'https://push.example.com'];
        yield 'trailing slash' => ['http://127.0.0.1:8080/', 'http://127.0.0.1:8080'];
        yield 'base path' => ['https://example.com/cometbox/', 'https://example.com/cometbox'];
        yield 'IPv6' => ['http://[::1]:8080', 'http://[::1]:8080'];
        yield 'upper-case scheme' => ['HTTP://node', 'HTTP://node'];
    }

    /**
     * @dataProvider goodNodes
     */
    public function testGoodNodes(string $url, string $normalised): void
    {
        self::assertSame([$normalised], (new Client([$url], '', 2.0, FakeTransport::node()))->nodes());
    }

    /** @return iterable<string, array{array<mixed>, string}> */
    public function badNodes(): iterable
    {
        yield 'none' => [[], 'nodes: want at least one node URL'];
        yield 'not a string' => [[8080], 'nodes[0]: want a URL string, got integer'];
        yield 'no scheme' => [['node1:8080'], 'nodes[0] "node1:8080": not an absolute URL; want http(s)://host[:port][/path]'];
        yield 'host only' => [['node1'], 'nodes[0] "node1": not an absolute URL'];
        yield 'ftp' => [['ftp://node1'], 'the scheme must be http or https'];
        yield 'query' => [['http://n:8080/?x=1'], 'no query or fragment'];
        yield 'empty query' => [['http://n:8080/?'], 'no query or fragment'];
        yield 'fragment' => [['http://n#top'], 'no query or fragment'];
        yield 'credentials' => [['http://user:pw@n'], 'no credentials in the URL'];
        yield 'port 0' => [['http://n:0'], 'nodes[0] "http://n:0"'];
        yield 'port too big' => [['http://n:70000'], 'nodes[0] "http://n:70000"'];
        yield 'white space' => [['http://n/a b'], 'no white space or control characters'];
        yield 'second is bad' => [['http://good', 'bad'], 'nodes[1] "bad"'];
    }

    /**
     * @dataProvider badNodes
     *
     * @param array<mixed> $nodes
     */
    public function testBadNodes(array $nodes, string $error): void
    {
        $this->expectException(InvalidArgumentException::class);
        $this->expectExceptionMessage($error);
        new Client($nodes, '', 2.0, FakeTransport::node());
    }

    /** @return iterable<string, array{callable(): Client, string}> */
    public function badArguments(): iterable
    {
        yield 'zero timeout' => [static function (): Client {
            return new Client(['http://n'], '', 0.0);
        }, 'timeout 0.0: want a number of seconds above 0'];
        yield 'infinite timeout' => [static function (): Client {
            return new Client(['http://n'], '', INF);
        }, 'timeout INF'];
        yield 'negative connect timeout' => [static function (): Client {
            return new Client(['http://n'], '', 2.0, null, '', 'xml', null, -1.0);
        }, 'connectTimeout -1.0'];
        yield 'zero attempts' => [static function (): Client {
            return new Client(['http://n'], '', 2.0, null, '', 'xml', 0);
        }, 'maxAttempts 0: want 1 or more'];
        yield 'secret with a newline' => [static function (): Client {
            return new Client(['http://n'], "s3cret\r\nX-Evil: 1");
        }, 'secret: holds a control character'];
        yield 'secret with a trailing space' => [static function (): Client {
            return new Client(['http://n'], 's3cret ');
        }, 'secret: starts or ends with white space'];
    }

    /**
     * @dataProvider badArguments
     *
     * @param callable(): Client $construct
     */
    public function testBadArguments(callable $construct, string $error): void
    {
        $this->expectException(InvalidArgumentException::class);
        $this->expectExceptionMessage($error);
        $construct();
    }
}
