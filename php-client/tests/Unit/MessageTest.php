<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Format\JsonFormat;
use Cometbox\Message;
use PHPUnit\Framework\TestCase;

/**
 * Messages, their JSON encoding, and the JSON publish format.
 */
final class MessageTest extends TestCase
{
    public function testAStringIsTextAndAnythingElseJson(): void
    {
        self::assertSame(Message::TEXT, Message::of('a', '{"looks":"like JSON"}')->type());
        self::assertSame('{"looks":"like JSON"}', Message::of('a', '{"looks":"like JSON"}')->payload());
        self::assertSame(Message::JSON, Message::of('a', [])->type());
        self::assertSame('[]', Message::of('a', [])->payload());
        self::assertSame('null', Message::of('a', null)->payload());
        self::assertSame('"a string as JSON"', Message::json('a', 'a string as JSON')->payload());
        self::assertSame('a', Message::of('a', 'x')->to());
    }

    public function testJsonEncodingKeepsUnicodeSlashesAndFractions(): void
    {
        $payload = Message::json('a', ['url' => 'https://example.com/a/b', 'text' => 'Zoë 😀 漢字', 'n' => 2.0, 'big' => PHP_INT_MAX, 'neg' => -0.5])->payload();

        self::assertSame('{"url":"https://example.com/a/b","text":"Zoë 😀 漢字","n":2.0,"big":9223372036854775807,"neg":-0.5}', $payload);
    }

    public function testInvalidUtf8TextNamesTheFirstBadByte(): void
    {
        $this->expectException(InvalidArgumentException::class);
        $this->expectExceptionMessage('message to "alice": text is not valid UTF-8 (byte 0xED at offset 2)');
        Message::text('alice', "ok\xED\xA0\x80"); // a UTF-16 surrogate, encoded
    }

    /** @return iterable<string, array{string, string}> */
    public function invalidUtf8(): iterable
    {
        yield 'lone continuation byte' => ["\x80", 'byte 0x80 at offset 0'];
        yield 'overlong' => ["ab\xC0\xAF", 'byte 0xC0 at offset 2'];
        yield 'truncated' => ["é\xE2\x82", 'byte 0xE2 at offset 2'];
        yield 'beyond U+10FFFF' => ["\xF4\x90\x80\x80", 'byte 0xF4 at offset 0'];
        yield 'latin-1' => ["caf\xE9", 'byte 0xE9 at offset 3'];
    }

    /**
     * @dataProvider invalidUtf8
     */
    public function testInvalidUtf8(string $text, string $where): void
    {
        $this->expectExceptionMessage($where);
        Message::text('alice', $text);
    }

    public function testJsonFormatBody(): void
    {
        $body = (new JsonFormat())->encode([
            Message::text('alice', "Hello\r\n\"quoted\" </script> \u{1}"),
            Message::json('bob', ['score' => 3, 'list' => [1.5, null]]),
        ]);

        self::assertSame(
            '{"messages":[{"to":"alice","data":"Hello\r\n\"quoted\" </script> \u0001"},{"to":"bob","data":{"score":3,"list":[1.5,null]}}]}',
            $body
        );
        self::assertIsArray(json_decode($body, true, 512, JSON_THROW_ON_ERROR));
    }

    public function testJsonFormatReceipts(): void
    {
        $format = new JsonFormat();
        $messages = [Message::text('alice', 'x'), Message::text('carol', 'y')];

        self::assertSame([7, 12], $format->receipts('{"queued":[{"to":"alice","id":7},{"to":"carol","id":12}]}' . "\n", $messages));
        self::assertNull($format->receipts('{"queued":[{"to":"alice","id":7}]}', $messages));
        self::assertNull($format->receipts('{"queued":[{"to":"alice","id":7},{"to":"bob","id":1}]}', $messages));
        self::assertNull($format->receipts('{"queued":[{"to":"alice","id":"7"},{"to":"carol","id":1}]}', $messages));
        self::assertNull($format->receipts('[]', $messages));
        self::assertNull($format->receipts('<queued/>', $messages));
    }
}
