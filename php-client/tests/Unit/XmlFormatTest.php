<?php

declare(strict_types=1);

namespace Cometbox\Tests\Unit;

use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Format\XmlFormat;
use Cometbox\Message;
use PHPUnit\Framework\TestCase;

/**
 * The XML body, written by XMLWriter and by the hand-written fallback:
 * the same bytes from both, and a document any XML parser reads back to
 * exactly the text that was sent.
 */
final class XmlFormatTest extends TestCase
{
    /** @return iterable<string, array{string}> */
    public function texts(): iterable
    {
        yield 'plain' => ['Hello'];
        yield 'empty' => [''];
        yield 'markup' => ['<b>bold</b> & <i>co</i>'];
        yield 'entities stay literal' => ['&amp; &lt; &#13; &unknown;'];
        yield 'CDATA end' => [']]>'];
        yield 'CDATA section' => ['<![CDATA[x]]>'];
        yield 'quotes' => ['"double" \'single\''];
        yield 'leading and trailing white space' => ["  \t padded \n\n  "];
        yield 'only white space' => [" \t\n "];
        yield 'CRLF and lone CR' => ["line1\r\nline2\rline3\n"];
        yield 'emoji' => ["\u{1F600}\u{1F44D}\u{1F3FD} family \u{1F468}\u{200D}\u{1F469}\u{200D}\u{1F467}"];
        yield 'CJK' => ['漢字かなカナ한국어'];
        yield 'RTL' => ["עברית العربية \u{202E}reversed\u{202C}"];
        yield 'combining and zero width' => ["e\u{0301} a\u{200B}b \u{FEFF}bom"];
        yield 'C1 controls and DEL' => ["\u{7F}\u{80}\u{9F}"];
        yield 'edges of the XML ranges' => ["\u{D7FF}\u{E000}\u{FFFD}\u{10000}\u{10FFFF}"];
        yield 'a comment' => ['<!-- not a comment -->'];
        yield 'a processing instruction' => ['<?php echo 1; ?>'];
        yield 'a DOCTYPE' => ['<!DOCTYPE x [<!ENTITY e "boom">]>&e;'];
    }

    /**
     * @dataProvider texts
     */
    public function testBothWritersGiveTheSameBytes(string $text): void
    {
        $messages = [Message::text('alice', $text), Message::json('bob', ['text' => $text])];

        self::assertSame((new XmlFormat(true))->encode($messages), (new XmlFormat(false))->encode($messages));
    }

    /**
     * @dataProvider texts
     */
    public function testTheFallbackWriterRoundTrips(string $text): void
    {
        $this->assertRoundTrip(new XmlFormat(false), $text);
    }

    /**
     * @dataProvider texts
     */
    public function testTheXmlWriterRoundTrips(string $text): void
    {
        $this->assertRoundTrip(new XmlFormat(true), $text);
    }

    public function testTheFallbackIsUsedWithoutXmlWriter(): void
    {
        $body = (new XmlFormat(false))->encode([Message::text('alice', "a\r\"b\"<>&"), Message::json('b', [1])]);

        self::assertSame(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<messages>"
            . '<message to="alice">a&#13;&quot;b&quot;&lt;&gt;&amp;</message>'
            . '<message to="b" type="json">[1]</message>'
            . "</messages>\n",
            $body
        );
    }

    /** @return iterable<string, array{string, string}> */
    public function forbidden(): iterable
    {
        yield 'NUL' => ["a\x00b", 'U+0000 at byte 1'];
        yield 'U+0001' => ["\x01", 'U+0001 at byte 0'];
        yield 'vertical tab' => ["ok\x0B", 'U+000B at byte 2'];
        yield 'form feed' => ["é\x0C", 'U+000C at byte 2'];
        yield 'escape' => ["\e[31mred", 'U+001B at byte 0'];
        yield 'U+FFFE' => ["\u{FFFE}", 'U+FFFE at byte 0'];
        yield 'U+FFFF' => ["xx\u{FFFF}", 'U+FFFF at byte 2'];
    }

    /**
     * @dataProvider forbidden
     */
    public function testCharactersXmlCannotCarryAreRefusedByBothWriters(string $text, string $where): void
    {
        foreach ([true, false] as $useXmlWriter) {
            try {
                (new XmlFormat($useXmlWriter))->encode([Message::text('alice', 'fine'), Message::text('bob', $text)]);
                self::fail('no exception');
            } catch (InvalidArgumentException $e) {
                self::assertStringStartsWith('messages[1] to "bob": the text holds ' . $where . ', which XML cannot carry', $e->getMessage());
                self::assertStringContainsString('send it as JSON', $e->getMessage());
            }
        }
    }

    public function testJsonPayloadsCarryEveryCharacter(): void
    {
        $value = ['ctl' => "\x01\x1F", 'nonchars' => "\u{FFFE}\u{FFFF}", 'cr' => "\r"];
        foreach ([true, false] as $useXmlWriter) {
            $doc = self::parse((new XmlFormat($useXmlWriter))->encode([Message::json('alice', $value)]));
            $json = $doc->getElementsByTagName('message')->item(0)->textContent;
            self::assertSame('{"ctl":"\u0001\u001f","nonchars":"\ufffe\uffff","cr":"\r"}', $json);
            self::assertSame($value, json_decode($json, true));
        }
    }

    public function testMessageKeysNameTheMessage(): void
    {
        $this->expectExceptionMessage('messages[second] to "b"');
        (new XmlFormat())->encode(['first' => Message::text('a', 'ok'), 'second' => Message::text('b', "\x02")]);
    }

    public function testReceipts(): void
    {
        $format = new XmlFormat();
        $messages = [Message::text('alice', 'x'), Message::text('bob', 'y'), Message::text('alice', 'z')];
        $body = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<queued><message to=\"alice\" id=\"7\"/><message to=\"bob\" id=\"3\"/><message to=\"alice\" id=\"8\"/></queued>\n";

        self::assertSame([7, 3, 8], $format->receipts($body, $messages));
        self::assertSame([1], $format->receipts('<queued><message id="1" to="user:42@x"></message></queued>', [Message::text('user:42@x', 'x')]));
        self::assertNull($format->receipts($body, array_slice($messages, 0, 2)), 'one receipt too many');
        self::assertNull($format->receipts(str_replace('"bob"', '"eve"', $body), $messages), 'another recipient');
        self::assertNull($format->receipts(str_replace('"3"', '"0"', $body), $messages), 'id 0');
        self::assertNull($format->receipts(str_replace('"3"', '"x"', $body), $messages), 'id not a number');
        self::assertNull($format->receipts('<html>hello</html>', [Message::text('a', 'b')]));
        self::assertNull($format->receipts('', [Message::text('a', 'b')]));
    }

    private function assertRoundTrip(XmlFormat $format, string $text): void
    {
        $doc = self::parse($format->encode([Message::text('alice', $text), Message::json('bob', ['text' => $text])]));
        $messages = $doc->getElementsByTagName('message');

        self::assertSame(2, $messages->length);
        self::assertSame('alice', $messages->item(0)->getAttribute('to'));
        self::assertFalse($messages->item(0)->hasAttribute('type'));
        self::assertSame($text, $messages->item(0)->textContent);
        self::assertSame('json', $messages->item(1)->getAttribute('type'));
        self::assertSame(['text' => $text], json_decode($messages->item(1)->textContent, true));
    }

    private static function parse(string $xml): \DOMDocument
    {
        $doc = new \DOMDocument();
        $previous = libxml_use_internal_errors(true);
        try {
            self::assertTrue($doc->loadXML($xml, LIBXML_NONET), 'not well-formed: ' . print_r(libxml_get_errors(), true));
        } finally {
            libxml_clear_errors();
            libxml_use_internal_errors($previous);
        }
        self::assertSame('messages', $doc->documentElement->nodeName);
        foreach ($doc->documentElement->childNodes as $child) {
            self::assertSame('message', $child->nodeName, 'only <message> elements inside <messages>');
            foreach ($child->childNodes as $content) {
                self::assertSame(XML_TEXT_NODE, $content->nodeType, 'only text inside <message>');
            }
        }

        return $doc;
    }
}
