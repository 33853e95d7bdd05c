<?php

declare(strict_types=1);

namespace Cometbox\Format;

use Cometbox\Exception\InvalidArgumentException;
use Cometbox\Internal\Text;
use Cometbox\Message;

/**
 * The XML publish format:
 *
 *     <?xml version="1.0" encoding="UTF-8"?>
 *     <messages><message to="alice">Hello &amp; welcome</message><message to="bob" type="json">{"x":1}</message>
 *       <message group="room:42" except="alice">Hi all</message></messages>
 *
 * written with XMLWriter when the extension is loaded and by hand
 * otherwise; both give the same bytes. Text is escaped (& < > " and CR,
 * which XML parsers would otherwise turn into LF), so it arrives exactly as
 * sent, "]]>" and white space included. Characters XML 1.0 cannot carry at
 * all (control characters other than tab, LF and CR; U+FFFE, U+FFFF) are
 * refused in text with an exception naming the message; in JSON payloads
 * they are escaped as \uXXXX.
 */
final class XmlFormat implements Format
{
    /** Characters XML 1.0 allows (its production Char). */
    private const NOT_XML_CHAR = '/[^\x{9}\x{A}\x{D}\x{20}-\x{D7FF}\x{E000}-\x{FFFD}\x{10000}-\x{10FFFF}]/u';

    private const ESCAPES = ['&' => '&amp;', '<' => '&lt;', '>' => '&gt;', '"' => '&quot;', "\r" => '&#13;'];

    private bool $useXmlWriter;

    /**
     * @param bool|null $useXmlWriter null: XMLWriter when loaded; false: the
     *                                hand-written writer (true needs the extension)
     */
    public function __construct(?bool $useXmlWriter = null)
    {
        $this->useXmlWriter = $useXmlWriter ?? class_exists(\XMLWriter::class);
    }

    public function contentType(): string
    {
        return 'application/xml; charset=utf-8';
    }

    public function encode(array $messages): string
    {
        $payloads = [];
        foreach ($messages as $index => $message) {
            $payloads[$index] = $this->payload($index, $message);
        }

        return $this->useXmlWriter ? $this->withXmlWriter($messages, $payloads) : $this->byHand($messages, $payloads);
    }

    public function receipts(string $body, array $messages): ?array
    {
        if (strpos($body, '<queued') === false
            || preg_match_all('~<message\b([^>]*?)/?>~', $body, $elements) !== count($messages)) {
            return null;
        }
        $ids = [];
        foreach (array_values($messages) as $i => $message) {
            preg_match_all('/\b(to|id|group|members)="([^"]*)"/', $elements[1][$i], $attrs, PREG_SET_ORDER);
            $attr = [];
            foreach ($attrs as $a) {
                $attr[$a[1]] = html_entity_decode($a[2], ENT_QUOTES | ENT_XML1, 'UTF-8');
            }
            if ($message->isGroup()) { // how many members got a copy
                if (($attr['group'] ?? null) !== $message->group() || preg_match('/^(0|[1-9]\d{0,18})$/', $attr['members'] ?? '') !== 1) {
                    return null;
                }
                $ids[] = (int) $attr['members'];
                continue;
            }
            if (($attr['to'] ?? null) !== $message->to() || preg_match('/^[1-9]\d{0,18}$/', $attr['id'] ?? '') !== 1) {
                return null;
            }
            $ids[] = (int) $attr['id'];
        }

        return $ids;
    }

    /**
     * The content of one <message> before escaping, checked.
     *
     * @param int|string $index
     */
    private function payload($index, Message $message): string
    {
        $payload = $message->payload();
        if ($message->isJson()) {
            // json_encode() leaves these two raw; they only occur inside JSON strings.
            return strtr($payload, ["\u{FFFE}" => '\ufffe', "\u{FFFF}" => '\uffff']);
        }
        if (preg_match(self::NOT_XML_CHAR, $payload, $m, PREG_OFFSET_CAPTURE) === 1) {
            throw new InvalidArgumentException(sprintf(
                'messages[%s] to %s: the text holds U+%04X at byte %d, which XML cannot carry and the node would refuse;'
                . ' send it as JSON (Message::json) or publish with format "json"',
                $index,
                $message->isGroup() ? 'group "' . $message->group() . '"' : '"' . $message->to() . '"',
                Text::codePoint($m[0][0]),
                $m[0][1]
            ));
        }

        return $payload;
    }

    /**
     * @param Message[] $messages
     * @param string[]  $payloads
     */
    private function withXmlWriter(array $messages, array $payloads): string
    {
        $w = new \XMLWriter();
        $w->openMemory();
        $w->startDocument('1.0', 'UTF-8');
        $w->startElement('messages');
        foreach ($messages as $index => $message) {
            $w->startElement('message');
            if ($message->isGroup()) {
                $w->writeAttribute('group', $message->group());
                if ($message->except() !== '') {
                    $w->writeAttribute('except', $message->except());
                }
            } else {
                $w->writeAttribute('to', $message->to());
            }
            if ($message->isJson()) {
                $w->writeAttribute('type', 'json');
            }
            $w->text($payloads[$index]);
            $w->fullEndElement();
        }
        $w->endElement();
        $w->endDocument();

        return $w->outputMemory();
    }

    /**
     * @param Message[] $messages
     * @param string[]  $payloads
     */
    private function byHand(array $messages, array $payloads): string
    {
        $xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<messages>";
        foreach ($messages as $index => $message) {
            if ($message->isGroup()) {
                $xml .= '<message group="' . strtr($message->group(), self::ESCAPES) . '"'
                    . ($message->except() !== '' ? ' except="' . strtr($message->except(), self::ESCAPES) . '"' : '');
            } else {
                $xml .= '<message to="' . strtr($message->to(), self::ESCAPES) . '"';
            }
            $xml .= ($message->isJson() ? ' type="json">' : '>')
                . strtr($payloads[$index], self::ESCAPES)
                . '</message>';
        }

        return $xml . "</messages>\n";
    }
}
