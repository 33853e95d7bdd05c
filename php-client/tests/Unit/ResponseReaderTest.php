<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Exception\TransportException;
use Cometbox\Transport\Deadline;
use Cometbox\Transport\Request;
use Cometbox\Transport\Response;
use Cometbox\Transport\ResponseReader;
use PHPUnit\Framework\TestCase;

/**
 * SocketTransport's HTTP/1.1 answer reader, on canned bytes.
 */
final class ResponseReaderTest extends TestCase
{
    public function testContentLength(): void
    {
        $answer = $this->read("HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nContent-Length: 5\r\n\r\nhello, and bytes after the body");

        self::assertSame(200, $answer->status());
        self::assertSame('application/xml', $answer->header('content-type'));
        self::assertSame('hello', $answer->body());
    }

    public function testChunked(): void
    {
        $raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Request-Id: abc\r\n\r\n"
            . "5\r\nhello\r\n"
            . "1;name=value\r\n,\r\n"
            . "A \r\n world \xF0\x9F\x98\r\n"
            . "1\r\n\x80\r\n"
            . "0\r\nTrailer: dropped\r\n\r\n";
        $answer = $this->read($raw);

        self::assertSame("hello, world \u{1F600}", $answer->body());
        self::assertSame('abc', $answer->header('X-Request-Id'));
        self::assertNull($answer->header('Trailer'));
    }

    public function testChunkedBodyOfManyChunks(): void
    {
        $body = str_repeat('0123456789abcdef', 10000);
        $raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        foreach (str_split($body, 4000) as $chunk) {
            $raw .= dechex(strlen($chunk)) . "\r\n" . $chunk . "\r\n";
        }
        $raw .= "0\r\n\r\n";

        self::assertSame($body, $this->read($raw)->body());
    }

    public function testUntilTheConnectionCloses(): void
    {
        self::assertSame("everything\r\nto the end", $this->read("HTTP/1.0 200 OK\r\n\r\neverything\r\nto the end")->body());
    }

    public function testInterimAnswersAreSkipped(): void
    {
        $answer = $this->read("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nRetry-After: 3\r\nContent-Length: 2\r\n\r\nno");

        self::assertSame(503, $answer->status());
        self::assertSame(3, $answer->retryAfter());
        self::assertSame('no', $answer->body());
    }

    public function testNoBodyFor204AndHead(): void
    {
        self::assertSame('', $this->read("HTTP/1.1 204 No Content\r\n\r\n")->body());
        self::assertSame('', $this->read("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 'HEAD')->body());
    }

    public function testRepeatedHeadersAreJoined(): void
    {
        self::assertSame('a, b', $this->read("HTTP/1.1 200 OK\r\nVary: a\r\nvary: b\r\nContent-Length: 0\r\n\r\n")->header('Vary'));
    }

    public function testBareLineFeedsAreAccepted(): void
    {
        self::assertSame('ok', $this->read("HTTP/1.1 200 OK\nContent-Length: 2\n\nok")->body());
    }

    /** @return iterable<string, array{string, string}> */
    public function broken(): iterable
    {
        yield 'nothing' => ['', 'connection closed while reading the status line'];
        yield 'not HTTP' => ["SSH-2.0-OpenSSH\r\n", 'not an HTTP/1.x answer: SSH-2.0-OpenSSH'];
        yield 'headers cut' => ["HTTP/1.1 200 OK\r\nContent-Le", 'connection closed while reading the headers'];
        yield 'body cut' => ["HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", 'connection closed after 5 of 10 bytes of the body'];
        yield 'bad length' => ["HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 'bad Content-Length "-1"'];
        yield 'chunk cut' => ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nshort", 'after 5 of 16 bytes of a chunk'];
        yield 'no last chunk' => ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n", 'while reading a chunk size'];
        yield 'bad chunk size' => ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 'bad chunk size line "zz"'];
        yield 'chunk longer than its size' => ["HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokay\r\n0\r\n\r\n", 'a chunk is longer than its size'];
        yield 'gzip' => ["HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 'unsupported Transfer-Encoding "gzip"'];
    }

    /**
     * @dataProvider broken
     */
    public function testBrokenAnswers(string $raw, string $error): void
    {
        $this->expectException(TransportException::class);
        $this->expectExceptionMessage($error);
        $this->read($raw);
    }

    public function testAnAnswerIsReadWithinTheDeadline(): void
    {
        $request = new Request('POST', 'http://n/publish', [], '', 0.000001, 1.0);
        $stream = self::stream("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        usleep(1000);

        $this->expectException(TransportException::class);
        $this->expectExceptionMessage('POST http://n/publish: no complete answer within the timeout');
        (new ResponseReader($stream, new Deadline($request)))->read('POST');
    }

    private function read(string $raw, string $method = 'POST'): Response
    {
        $request = new Request($method, 'http://n/publish', [], '', 5.0, 1.0);

        return (new ResponseReader(self::stream($raw), new Deadline($request)))->read($method);
    }

    /** @return resource */
    private static function stream(string $bytes)
    {
        $stream = fopen('php://memory', 'w+b');
        self::assertIsResource($stream);
        fwrite($stream, $bytes);
        rewind($stream);

        return $stream;
    }
}
